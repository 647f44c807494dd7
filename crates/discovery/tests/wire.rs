//! Eureka documents written by real servers (`../shared/fixtures/eureka/`), read, hashed,
//! written back in JSON and XML and read again.

use breakwater_discovery::wire::{
    self, ActionType, Applications, Format, Port, Status, applications_document, read_applications,
};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../../../shared/fixtures/eureka/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}

fn round_trips(apps: &Applications) {
    let json = applications_document(apps, Format::Json);
    assert_eq!(
        &read_applications(json.as_bytes()).unwrap(),
        apps,
        "JSON round trip"
    );
    let xml = applications_document(apps, Format::Xml);
    assert_eq!(
        &read_applications(xml.as_bytes()).unwrap(),
        apps,
        "XML round trip:\n{xml}"
    );
}

#[test]
fn old_server_quirks_single_objects_string_ports_numeric_delta() {
    for name in [
        "fargo-apps-sample-1-1.json",
        "fargo-apps-sample-1-1-post-v122.json",
        "fargo-apps-sample-1-2.json",
        "fargo-apps-sample-2-2.json",
    ] {
        let apps = read_applications(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!apps.applications.is_empty(), "{name}");
        assert_eq!(
            apps.versions_delta, "1",
            "{name}: numeric versions__delta read as text"
        );
        for i in apps.instances() {
            assert!(
                i.port.is_some_and(|p| p.port > 0),
                "{name}: port read from a string"
            );
            assert_eq!(i.status, Status::Up);
        }
        round_trips(&apps);
    }
    let apps = read_applications(&fixture("fargo-apps-sample-1-1.json")).unwrap();
    let i = apps.instances().next().unwrap();
    assert_eq!(
        i.port,
        Some(Port {
            port: 7101,
            enabled: true
        })
    );
    assert_eq!(
        i.overridden_status,
        Status::Up,
        "`overriddenstatus` spelling"
    );
    assert_eq!(
        i.id(),
        "192.168.40.94:7101",
        "no instanceId: the host name is the id"
    );
    assert_eq!(i.metadata["base-uri"], "https://192.168.40.94:7101");
    assert_eq!(i.lease_info.registration_timestamp, 1402450388650);
    assert_eq!(i.action_type, Some(ActionType::Modified));
}

#[test]
fn current_server_json_with_empty_map_metadata_and_string_timestamps() {
    let apps = read_applications(&fixture("steeltoe-foo-added.json")).unwrap();
    assert_eq!(apps.hashcode(), "UP_1_");
    assert_eq!(apps.apps_hashcode, apps.hashcode());
    let i = apps.instances().next().unwrap();
    assert_eq!(i.id(), "localhost:foo");
    assert!(i.metadata.is_empty(), "EmptyMap metadata");
    assert_eq!(
        i.secure_port,
        Some(Port {
            port: 443,
            enabled: false
        })
    );
    assert_eq!(i.last_dirty_timestamp, 1457714988172);
    assert!(!i.is_coordinating_discovery_server);
    assert_eq!(i.action_type, Some(ActionType::Added));
    round_trips(&apps);
}

#[test]
fn xml_as_servers_answer_without_a_json_accept_header() {
    let apps = read_applications(&fixture("prometheus-sd-apps.xml")).unwrap();
    assert_eq!(apps.applications.len(), 2);
    assert_eq!(apps.len(), 4);
    assert_eq!(apps.hashcode(), "UP_4_");
    assert_eq!(apps.apps_hashcode, "UP_4_");
    let config = &apps.applications[0];
    assert_eq!(config.name, "CONFIG-SERVICE");
    let i = &config.instances[0];
    assert_eq!(i.id(), "config-service001.test.com:config-service:8080");
    assert_eq!(
        i.port,
        Some(Port {
            port: 8080,
            enabled: true
        })
    );
    assert!(!i.secure_port.unwrap().enabled);
    assert_eq!(i.data_center_info.class, wire::MY_OWN_CLASS);
    assert_eq!(i.metadata["instanceId"], i.instance_id);
    round_trips(&apps);
}

#[test]
fn hashcode_counts_every_status_alphabetically_and_deltas_reconcile() {
    let mut apps = read_applications(&fixture("prometheus-sd-apps.xml")).unwrap();
    let mut delta = Applications::default();
    let mut changed = apps.applications[0].instances[0].clone();
    changed.status = Status::Down;
    changed.action_type = Some(ActionType::Modified);
    let mut gone = apps.applications[1].instances[0].clone();
    gone.action_type = Some(ActionType::Deleted);
    let mut added = changed.clone();
    added.instance_id = "new-one".into();
    added.status = Status::OutOfService;
    added.action_type = Some(ActionType::Added);
    delta.versions_delta = "7".into();
    delta.applications = vec![wire::Application {
        name: "MIXED".into(),
        instances: vec![changed, gone, added],
    }];
    apps.apply_delta(&delta);
    assert_eq!(apps.hashcode(), "DOWN_1_OUT_OF_SERVICE_1_UP_2_");
    assert_eq!(apps.len(), 4);
    assert_eq!(apps.versions_delta, "7");
    assert_eq!(Applications::default().hashcode(), "");
}

#[test]
fn unreadable_documents_name_the_field() {
    for (doc, path, says) in [
        (&b"{"[..], "document", "not JSON"),
        (b"{\"apps\":{}}", "applications", "no \"applications\" root"),
        (
            b"{\"applications\":{\"application\":[{\"name\":\"A\",\"instance\":[{\"app\":\"A\",\"hostName\":\"h\",\"port\":{\"$\":\"http\"}}]}]}}",
            "applications.application[0].instance[0].port.$",
            "\"http\" is not a whole number",
        ),
        (
            b"{\"applications\":{\"application\":{\"name\":\"A\",\"instance\":{\"app\":\"A\",\"hostName\":\"h\",\"port\":70000}}}}",
            "applications.application[0].instance[0].port",
            "70000 is not a port number",
        ),
        (
            b"{\"applications\":{\"application\":[{\"instance\":[]}]}}",
            "applications.application[0].name",
            "required",
        ),
        (
            b"{\"applications\":{\"application\":[{\"name\":\"A\",\"instance\":[{\"app\":\"A\"}]}]}}",
            "applications.application[0].instance[0]",
            "no instanceId",
        ),
        (b"<applications><application>", "XML", "unclosed"),
        (b"<a></b>", "XML at byte", ""),
        (b"\xff\xfe", "document", "not UTF-8"),
    ] {
        let e = read_applications(doc).unwrap_err();
        assert!(
            e.path.starts_with(path) && e.reason.contains(says),
            "{}: got {e}",
            String::from_utf8_lossy(doc)
        );
    }
}
