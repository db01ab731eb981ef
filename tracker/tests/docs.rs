//! The README's configuration table and example file stay true to the binary.

use clap::CommandFactory;
use tracker::Config;

const README: &str = include_str!("../README.md");

#[test]
fn the_example_config_file_loads() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tracker.example.toml");
    let config = Config::load(["tracker", "--config", path]).unwrap();
    assert_eq!(config.max_connections_per_ip, 256);
    assert_eq!(config.trusted_proxies.len(), 2);
}

#[test]
fn every_flag_and_variable_is_documented_in_the_readme() {
    for arg in Config::command().get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        if long == "help" || long == "version" {
            continue;
        }
        let row = format!(
            "| `--{long}` | `{}` |",
            arg.get_env().unwrap().to_str().unwrap()
        );
        assert!(
            README.contains(&row),
            "README lacks the row for --{long}: {row}"
        );
    }
}
