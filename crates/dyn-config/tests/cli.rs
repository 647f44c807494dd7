//! The `breakwater-config` binary against moto_server: every command, text and JSON output,
//! settings from environment variables, refusals and conflicts with a non-zero exit.

mod common;

use std::process::{Command, Output};

use common::Moto;
use serde_json::Value;

/// The CLI with its settings from the environment (no flags), as in a shell profile.
fn command(moto: &Moto, args: &[&str]) -> Command {
    command_for(&moto.url, args)
}

/// [`command`] against any endpoint.
fn command_for(url: &str, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_breakwater-config"));
    command
        .args(args)
        .env("BREAKWATER_CONFIG_TABLE", "ops")
        .env("AWS_ENDPOINT_URL_DYNAMODB", url)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("USER", "operator")
        .env_remove("AWS_PROFILE")
        .env_remove("BREAKWATER_CONFIG_OUTPUT");
    command
}

/// Runs the CLI (see [`command`]) to the end.
fn cli(moto: &Moto, args: &[&str]) -> Output {
    command(moto, args).output().expect("the CLI runs")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn json(out: &Output) -> Value {
    serde_json::from_str(&ok(out)).expect("JSON output")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_in_text_and_json() {
    let moto = Moto::start().await;
    ok(&cli(&moto, &["init"]));

    let set = json(&cli(
        &moto,
        &["--output", "json", "set", "orders.timeoutMs", "800"],
    ));
    assert_eq!(set["version"], 1);
    assert_eq!(set["updated_by"], "operator", "$USER by default");
    let text = ok(&cli(
        &moto,
        &["set", "orders.timeoutMs", "500", "--who", "alice"],
    ));
    assert!(
        text.contains("orders.timeoutMs [*] = 500") && text.contains("was 800"),
        "{text}"
    );
    ok(&cli(
        &moto,
        &["set", "orders.timeoutMs", "900", "--app", "checkout"],
    ));
    ok(&cli(&moto, &["set", "feature.newCheckout", "25%"]));

    let got = json(&cli(
        &moto,
        &["--output", "json", "get", "orders.timeoutMs"],
    ));
    assert_eq!(
        (
            &got["value"],
            &got["version"],
            &got["previous_value"],
            &got["updated_by"]
        ),
        (
            &Value::from("500"),
            &Value::from(2),
            &Value::from("800"),
            &Value::from("alice")
        )
    );
    let scoped = json(&cli(
        &moto,
        &[
            "--output",
            "json",
            "get",
            "orders.timeoutMs",
            "--app",
            "checkout",
        ],
    ));
    assert_eq!(scoped["scope"], "app=checkout");
    // What an instance sees: the most specific row that applies to it.
    let seen = |args: &[&str]| {
        let mut all = vec!["--output", "json", "resolve", "orders.timeoutMs"];
        all.extend_from_slice(args);
        json(&cli(&moto, &all))
    };
    let checkout = seen(&["--app", "checkout", "--instance", "i-1"]);
    assert_eq!(
        (&checkout["scope"], &checkout["value"]),
        (&Value::from("app=checkout"), &Value::from("900"))
    );
    let search = seen(&["--app", "search"]);
    assert_eq!(
        (&search["scope"], &search["value"]),
        (&Value::from("*"), &Value::from("500"))
    );
    assert!(
        !cli(&moto, &["resolve", "orders.unknown", "--app", "x"])
            .status
            .success()
    );
    let listed = json(&cli(
        &moto,
        &["--output", "json", "list", "--prefix", "orders."],
    ));
    let rows: Vec<(&str, &str)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["scope"].as_str().unwrap(), r["value"].as_str().unwrap()))
        .collect();
    assert_eq!(rows, vec![("*", "500"), ("app=checkout", "900")]);
    let all = ok(&cli(&moto, &["list"]));
    assert_eq!(all.lines().count(), 3, "{all}");

    // Refusals: a value the key cannot take, a stale version; nothing is written.
    let bad = cli(&moto, &["set", "feature.newCheckout", "most"]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("nothing was written"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    // An empty scope (`--app "$APP"` with APP unset) would read back as every app.
    let empty_scope = cli(&moto, &["set", "orders.timeoutMs", "1", "--app", ""]);
    assert!(!empty_scope.status.success());
    assert!(
        String::from_utf8_lossy(&empty_scope.stderr).contains("scope app is empty"),
        "{}",
        String::from_utf8_lossy(&empty_scope.stderr)
    );
    let stale = cli(
        &moto,
        &["set", "orders.timeoutMs", "1", "--expect-version", "1"],
    );
    assert!(!stale.status.success());
    let stderr = String::from_utf8_lossy(&stale.stderr);
    assert!(
        stderr.contains("version 2") && stderr.contains("alice"),
        "{stderr}"
    );

    // Delete, history, rollback.
    ok(&cli(&moto, &["delete", "orders.timeoutMs", "--who", "bob"]));
    let gone = cli(&moto, &["get", "orders.timeoutMs"]);
    assert!(!gone.status.success(), "a deleted key is not set");
    let history = json(&cli(
        &moto,
        &["--output", "json", "history", "orders.timeoutMs"],
    ));
    let entries: Vec<(u64, Option<&str>, &str)> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["version"].as_u64().unwrap(),
                e["value"].as_str(),
                e["updated_by"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        entries,
        vec![
            (1, Some("800"), "operator"),
            (2, Some("500"), "alice"),
            (3, None, "bob")
        ]
    );
    let rolled = json(&cli(
        &moto,
        &[
            "--output",
            "json",
            "rollback",
            "orders.timeoutMs",
            "--to",
            "1",
        ],
    ));
    assert_eq!(
        (&rolled["value"], &rolled["version"]),
        (&Value::from("800"), &Value::from(4))
    );
    let text = ok(&cli(&moto, &["history", "orders.timeoutMs"]));
    assert_eq!(text.lines().count(), 4, "{text}");
    assert!(text.lines().nth(2).unwrap().contains("<deleted>"), "{text}");
    let missing = cli(&moto, &["rollback", "orders.timeoutMs", "--to", "9"]);
    assert!(!missing.status.success());
}

#[test]
fn an_unreachable_endpoint_is_an_error_not_a_panic() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = Command::new(env!("CARGO_BIN_EXE_breakwater-config"))
        .args([
            "--endpoint-url",
            &format!("http://127.0.0.1:{port}"),
            "--region",
            "us-east-1",
            "get",
            "k",
        ])
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_MAX_ATTEMPTS", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6), "unreachable");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("breakwater-config: ") && !stderr.contains("panicked"),
        "{stderr}"
    );
}

/// `breakwater-config list | head -0`: the reader is gone before anything is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_stdout_ends_quietly_and_json_errors_are_json() {
    let moto = Moto::start().await;
    ok(&cli(&moto, &["init"]));
    ok(&cli(&moto, &["set", "orders.timeoutMs", "800"]));
    for args in [
        &["list"][..],
        &["--output", "json", "get", "orders.timeoutMs"],
    ] {
        let mut child = command(&moto, args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Close the read end before the CLI has its answer from DynamoDB.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(stderr.is_empty(), "{args:?}: quiet, got {stderr}");
    }

    // Errors with --output json: one JSON object on stderr, a non-zero status.
    let missing = cli(&moto, &["--output", "json", "get", "orders.unknown"]);
    assert_eq!(missing.status.code(), Some(5), "not found");
    assert!(missing.stdout.is_empty());
    let error: Value = serde_json::from_slice(&missing.stderr).expect("a JSON error");
    assert!(
        error["error"]
            .as_str()
            .is_some_and(|e| e.contains("orders.unknown") && e.contains("not set")),
        "{error}"
    );
    assert_eq!(error["kind"], "not-found");
    assert_eq!(
        error.as_object().unwrap().len(),
        2,
        "error and kind: {error}"
    );
    let refused = cli(
        &moto,
        &[
            "--output",
            "json",
            "set",
            "orders.timeoutMs",
            "1",
            "--expect-version",
            "7",
        ],
    );
    assert_eq!(refused.status.code(), Some(4), "conflict");
    let error: Value = serde_json::from_slice(&refused.stderr).expect("a JSON error");
    assert!(error["error"].is_string(), "{error}");
    assert_eq!(error["kind"], "conflict");
}

/// A loopback endpoint that accepts connections and never answers.
fn hung_endpoint() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream); // keep it open, say nothing
            if held.len() > 64 {
                held.remove(0);
            }
        }
    });
    url
}

#[test]
fn a_hung_endpoint_is_an_error_within_the_timeout_not_a_hang() {
    let url = hung_endpoint();
    let started = std::time::Instant::now();
    let out = command_for(&url, &["--timeout-secs", "2", "get", "orders.timeoutMs"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        started.elapsed() < std::time::Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn the_source_bounds_each_call_against_a_hung_endpoint() {
    use breakwater_dyn_config::{ConfigStore, DynamoDbSource};
    let url = hung_endpoint();
    let port: u16 = url.rsplit(':').next().unwrap().parse().unwrap();
    let source = DynamoDbSource::new(common::client_for(port), "ops");
    let started = std::time::Instant::now();
    let load = tokio::time::timeout(
        std::time::Duration::from_secs(40),
        source.load(&ConfigStore::new()),
    )
    .await
    .expect("the load ends by itself");
    assert!(load.is_err());
    assert!(
        started.elapsed() < std::time::Duration::from_secs(25),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn typos_under_hystrix_and_malformed_keys_are_refused() {
    let moto = Moto::start().await;
    ok(&cli(&moto, &["init"]));
    let typo = cli(
        &moto,
        &["set", "hystrix.command.x.circuitBreaker.forceOpn", "true"],
    );
    assert!(!typo.status.success());
    let stderr = String::from_utf8_lossy(&typo.stderr);
    assert!(
        stderr.contains("did you mean `circuitBreaker.forceOpen`"),
        "{stderr}"
    );
    assert!(stderr.contains("--force"), "{stderr}");
    ok(&cli(
        &moto,
        &[
            "set",
            "hystrix.command.x.circuitBreaker.forceOpn",
            "true",
            "--force",
        ],
    ));
    for key in [
        "orders timeoutMs",
        "orders.\u{7}x",
        "__breakwater__/version",
        "",
    ] {
        let out = cli(&moto, &["set", key, "1", "--force"]);
        assert!(!out.status.success(), "{key:?} was written");
    }
}

#[tokio::test]
async fn history_ids_do_not_collide_and_old_ones_are_still_read() {
    let moto = Moto::start().await;
    ok(&cli(&moto, &["init"]));
    // Under the old `key|scope` id these two shared one history id.
    ok(&cli(&moto, &["set", "col2|app=A", "1"]));
    ok(&cli(&moto, &["set", "col2", "2", "--app", "A|*"]));
    let history = |args: &[&str]| {
        let mut all = vec!["--output", "json", "history"];
        all.extend_from_slice(args);
        let out: Value = serde_json::from_str(&ok(&cli(&moto, &all))).unwrap();
        out.as_array()
            .unwrap()
            .iter()
            .map(|e| e["value"].as_str().unwrap_or("").to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(history(&["col2|app=A"]), ["1"]);
    assert_eq!(history(&["col2", "--app", "A|*"]), ["2"]);
    // A history item written with the old id is read back.
    moto.client()
        .put_item()
        .table_name("ops-history")
        .item(
            "id",
            aws_sdk_dynamodb::types::AttributeValue::S("legacy|*".into()),
        )
        .item(
            "version",
            aws_sdk_dynamodb::types::AttributeValue::N("1".into()),
        )
        .item(
            "value",
            aws_sdk_dynamodb::types::AttributeValue::S("old".into()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(history(&["legacy"]), ["old"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_waits_for_tables_to_become_active_and_a_second_init_says_they_exist() {
    use std::sync::atomic::Ordering;
    let moto = Moto::start().await;
    let port: u16 = moto.url.rsplit(':').next().unwrap().parse().unwrap();
    let faults = std::sync::Arc::new(common::proxy::Faults::default());
    // The first four DescribeTable answers say CREATING, and the tables' items cannot be
    // reached until then: as real DynamoDB behaves for a few seconds after CreateTable.
    faults.creating_for.store(4, Ordering::SeqCst);
    let url = format!(
        "http://127.0.0.1:{}",
        common::proxy::proxy(port, faults.clone())
    );
    let out = command_for(&url, &["init"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("waiting for table ops to become ACTIVE (now CREATING"),
        "{stderr}"
    );
    assert_eq!(
        faults.creating_for.load(Ordering::SeqCst),
        0,
        "it asked until ACTIVE"
    );
    // The set right after init works.
    ok(&command_for(&url, &["set", "orders.timeoutMs", "250"])
        .output()
        .unwrap());
    let again = command_for(&url, &["init"]).output().unwrap();
    let stdout = ok(&again);
    assert!(stdout.contains("ops exists already"), "{stdout}");
    assert!(stdout.contains("ops-history exists already"), "{stdout}");
}

#[tokio::test]
async fn errors_are_one_line_with_a_kind_and_an_exit_code_of_their_own() {
    let moto = Moto::start().await;
    // No table yet: DynamoDB answers with an error code.
    let missing = cli(&moto, &["get", "orders.timeoutMs"]);
    assert_eq!(missing.status.code(), Some(7));
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("DynamoDB ResourceNotFoundException"),
        "{stderr}"
    );
    assert!(
        stderr.contains("table ops") && stderr.contains(&moto.url),
        "{stderr}"
    );
    assert!(stderr.len() < 400, "{} bytes: {stderr}", stderr.len());
    let verbose = cli(&moto, &["--verbose", "get", "orders.timeoutMs"]);
    assert!(
        verbose.stderr.len() > missing.stderr.len(),
        "--verbose adds the SDK's account"
    );
    let json = cli(&moto, &["--output", "json", "get", "orders.timeoutMs"]);
    let error: Value = serde_json::from_slice(&json.stderr).unwrap();
    assert_eq!(error["kind"], "dynamodb");

    ok(&cli(&moto, &["init"]));
    let invalid = cli(
        &moto,
        &[
            "set",
            "hystrix.command.x.circuitBreaker.errorThresholdPercentage",
            "150",
        ],
    );
    assert_eq!(invalid.status.code(), Some(3));
    ok(&cli(&moto, &["set", "orders.timeoutMs", "250"]));
    let conflict = cli(
        &moto,
        &["set", "orders.timeoutMs", "300", "--expect-version", "7"],
    );
    assert_eq!(conflict.status.code(), Some(4));
    let unset = cli(&moto, &["get", "orders.nothing"]);
    assert_eq!(unset.status.code(), Some(5));

    let nobody = format!("http://127.0.0.1:{}", common::free_port());
    let unreachable = command_for(
        &nobody,
        &["--output", "json", "--timeout-secs", "2", "get", "k"],
    )
    .output()
    .unwrap();
    assert_eq!(unreachable.status.code(), Some(6));
    let error: Value = serde_json::from_slice(&unreachable.stderr).unwrap();
    assert_eq!(error["kind"], "unreachable");
    assert!(
        error["error"].as_str().unwrap().contains(&nobody),
        "{error}"
    );
}
