//! Any bytes, and any corruption of real servers' documents, are read or refused with a
//! message that names where; nothing panics.

use proptest::prelude::*;

fn fixtures() -> Vec<Vec<u8>> {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/fixtures/eureka"
    );
    let mut docs: Vec<Vec<u8>> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("fixtures in {dir}: {e}"))
        .map(|entry| std::fs::read(entry.unwrap().path()).unwrap())
        .collect();
    docs.sort();
    assert!(docs.len() >= 6);
    docs
}

/// Every string of `v` as the XML writer writes it.
fn xml_safe(v: &mut serde_json::Value) {
    use breakwater_discovery::wire::xml_char;
    match v {
        serde_json::Value::String(s) => {
            *s = s
                .chars()
                .map(|c| if xml_char(c) { c } else { '\u{FFFD}' })
                .collect();
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(xml_safe),
        serde_json::Value::Object(members) => members.values_mut().for_each(xml_safe),
        _ => {}
    }
}

fn check(bytes: &[u8]) {
    match breakwater_discovery::wire::read_applications(bytes) {
        Ok(apps) => {
            // Whatever was read can be written and read back.
            use breakwater_discovery::wire::{
                Format, applications_document, is_xml_name, read_applications,
            };
            let json = applications_document(&apps, Format::Json);
            assert_eq!(
                read_applications(json.as_bytes()).as_ref(),
                Ok(&apps),
                "JSON"
            );
            // XML carries everything but metadata keys that cannot be element names.
            let mut xml_apps = apps.clone();
            for i in xml_apps
                .applications
                .iter_mut()
                .flat_map(|a| a.instances.iter_mut())
            {
                i.metadata.retain(|k, _| is_xml_name(k));
                i.data_center_info.metadata.retain(|k, _| is_xml_name(k));
            }
            // ... and text XML cannot carry is written as U+FFFD.
            let mut doc: serde_json::Value =
                serde_json::from_str(&applications_document(&xml_apps, Format::Json)).unwrap();
            xml_safe(&mut doc);
            let xml_apps = read_applications(doc.to_string().as_bytes()).unwrap();
            let xml = applications_document(&apps, Format::Xml);
            assert_eq!(
                read_applications(xml.as_bytes()).as_ref(),
                Ok(&xml_apps),
                "XML:\n{xml}"
            );
            assert!(
                roxmltree::Document::parse(&xml).is_ok(),
                "a standard parser reads it:\n{xml}"
            );
        }
        Err(e) => assert!(!e.path.is_empty() && !e.reason.is_empty(), "{e:?}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(5000))]

    #[test]
    fn arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        check(&bytes);
    }

    #[test]
    fn corrupted_real_documents(
        which in 0usize..6,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..8),
    ) {
        let mut doc = fixtures()[which].clone();
        for (at, byte, op) in edits {
            if doc.is_empty() { break; }
            let i = at.index(doc.len());
            match op {
                0 => doc[i] = byte,
                1 => { doc.remove(i); }
                _ => doc.insert(i, byte),
            }
        }
        check(&doc);
    }
}
