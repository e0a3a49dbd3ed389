//! The JSON bodies of container create and update, parsed with the
//! daemon's own types (daemon/src/containers/config.rs), and the
//! `changes` lines of commit and import: never a panic, and a config that
//! parses survives the trip through the container record (serialize,
//! parse again) unchanged, as a daemon restart reads it back.
#![no_main]

#[allow(dead_code)]
#[path = "../../daemon/src/containers/config.rs"]
mod config;

use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

fn round_trips<T>(what: &str, v: &T)
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let json =
        serde_json::to_string(v).unwrap_or_else(|e| panic!("{what} does not serialize: {e}"));
    let back: T = serde_json::from_str(&json)
        .unwrap_or_else(|e| panic!("{what} record {json} does not parse back: {e}"));
    assert_eq!(&back, v, "{what} changed through its record {json}");
}

fuzz_target!(|data: &[u8]| {
    if let Ok(body) = serde_json::from_slice::<config::CreateBody>(data) {
        round_trips("Config", &body.config);
        if let Some(hc) = &body.host_config {
            round_trips("HostConfig", hc);
            let _ = hc.network_mode();
            let _ = hc.security_opts().count();
        }
    }
    let _ = serde_json::from_slice::<config::UpdateBody>(data);
    if let Ok(hc) = serde_json::from_slice::<config::HostConfig>(data) {
        round_trips("HostConfig", &hc);
    }
    // The `changes` of commit and import, one per line.
    if let Ok(text) = std::str::from_utf8(data) {
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        let mut image_config = Map::new();
        if berth_images::changes::apply(&mut image_config, &lines).is_ok() {
            let v = Value::Object(image_config);
            serde_json::to_vec(&v).expect("an applied config serializes");
        }
    }
});
