//! A refused value is logged at error level with the key, where the value came from and why
//! (read back through a tracing-subscriber writer).

use std::io::Write;
use std::sync::{Arc, Mutex};

use breakwater_dyn_config::ConfigStore;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_refused_value_is_logged_with_key_source_and_reason() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let path = std::env::temp_dir().join(format!("bw-logging-{}.properties", std::process::id()));
    std::fs::write(&path, "orders.retries = lots\n").unwrap();
    let config = ConfigStore::new();
    let retries = config.property("orders.retries", 3u32);
    config.load_file(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(retries.get(), 3);

    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("ERROR"))
        .unwrap_or_else(|| panic!("no error line in {log:?}"));
    assert!(line.contains("key=orders.retries"), "{line}");
    assert!(
        line.contains(&format!("source=file ({}:1)", path.display())),
        "{line}"
    );
    assert!(
        line.contains("lots") && line.contains("last good value stays"),
        "{line}"
    );
}
