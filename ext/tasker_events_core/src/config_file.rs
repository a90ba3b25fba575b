//! The domain-event settings of a worker's `worker.toml` files.
//!
//! Settings are layered: built-in defaults, then `<dir>/base/worker.toml` (required), then
//! `<dir>/environments/<environment>/worker.toml` if it exists. Each layer changes only the keys
//! it sets, so an environment file lists only what differs from base.
//!
//! `worker.toml` also configures the rest of a tasker worker (`[worker.web]`, other channels,
//! ...), and those tables are ignored here. The three tables this crate reads are strict, so
//! that a misspelt key fails the boot instead of silently leaving a default in force:
//!
//! - `[worker.mpsc_channels.in_process_events]`: `broadcast_buffer_size`,
//!   `log_subscriber_errors`, `dispatch_timeout_ms`
//! - `[worker.mpsc_channels.domain_events]`: `command_buffer_size`,
//!   `shutdown_drain_timeout_ms`, `log_dropped_events`
//! - `[worker.event_systems.worker.metadata.in_process_events]`: `ffi_integration_enabled`,
//!   `deduplication_cache_size`
//!
//! An unknown key in them, a value of the wrong type, or a number out of range is a
//! [`ConfigFileError`] naming the file, the line and the full dotted key. A misspelt *table*
//! name is outside them and so is ignored like any other table of the worker.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::config::Config;

const IN_PROCESS_EVENTS: &str = "worker.mpsc_channels.in_process_events";
const DOMAIN_EVENTS: &str = "worker.mpsc_channels.domain_events";
const EVENT_SYSTEM_METADATA: &str = "worker.event_systems.worker.metadata.in_process_events";

const BUFFER_SIZE: Kind = Kind::Integer {
    min: 1,
    max: 1_000_000,
};
const MILLIS: Kind = Kind::Integer {
    min: 1,
    max: 3_600_000,
};
const CACHE_SIZE: Kind = Kind::Integer {
    min: 0,
    max: 10_000_000,
};

/// Every key read, by table, with what its value must be.
const KEYS: [(&str, &str, Kind); 8] = [
    (IN_PROCESS_EVENTS, "broadcast_buffer_size", BUFFER_SIZE),
    (IN_PROCESS_EVENTS, "log_subscriber_errors", Kind::Boolean),
    (IN_PROCESS_EVENTS, "dispatch_timeout_ms", MILLIS),
    (DOMAIN_EVENTS, "command_buffer_size", BUFFER_SIZE),
    (DOMAIN_EVENTS, "shutdown_drain_timeout_ms", MILLIS),
    (DOMAIN_EVENTS, "log_dropped_events", Kind::Boolean),
    (
        EVENT_SYSTEM_METADATA,
        "ffi_integration_enabled",
        Kind::Boolean,
    ),
    (
        EVENT_SYSTEM_METADATA,
        "deduplication_cache_size",
        CACHE_SIZE,
    ),
];

#[derive(Debug, Clone, Copy)]
enum Kind {
    Integer { min: i64, max: i64 },
    Boolean,
}

/// A value that has passed its key's type and range check.
#[derive(Debug, Clone, Copy)]
enum Checked {
    Integer(u64),
    Boolean(bool),
}

/// The domain-event settings of `worker.toml`, named as in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerSettings {
    /// Capacity of each in-process subscriber's channel and of the drain thread's queue.
    pub broadcast_buffer_size: usize,
    pub log_subscriber_errors: bool,
    /// Longest a Rust subscriber may take for one event.
    pub dispatch_timeout_ms: u64,
    /// Capacity of the channel to the durable publisher.
    pub command_buffer_size: usize,
    /// Longest shutdown waits for queued events.
    pub shutdown_drain_timeout_ms: u64,
    pub log_dropped_events: bool,
    /// Whether Ruby subscribers receive fast and broadcast events through the drain thread.
    pub ffi_integration_enabled: bool,
    /// Step completions remembered so that one reported twice publishes its events once;
    /// 0 disables deduplication.
    pub deduplication_cache_size: usize,
}

/// The base values of the design this gem implements.
impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            broadcast_buffer_size: 2000,
            log_subscriber_errors: true,
            dispatch_timeout_ms: 5000,
            command_buffer_size: 1000,
            shutdown_drain_timeout_ms: 5000,
            log_dropped_events: true,
            ffi_integration_enabled: true,
            deduplication_cache_size: 10_000,
        }
    }
}

impl WorkerSettings {
    /// Reads `<config_dir>/base/worker.toml`, then the environment's file if there is one.
    pub fn load(config_dir: &Path, environment: &str) -> Result<Self, ConfigFileError> {
        let valid_name = !environment.is_empty()
            && environment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !valid_name {
            return Err(ConfigFileError {
                message: format!(
                    "invalid environment {environment:?}: expected letters, digits, _ and -"
                ),
                ..ConfigFileError::new(config_dir)
            });
        }

        let mut settings = Self::default();
        settings.overlay_file(&config_dir.join("base").join("worker.toml"))?;
        let environment_file = config_dir
            .join("environments")
            .join(environment)
            .join("worker.toml");
        if environment_file.exists() {
            settings.overlay_file(&environment_file)?;
        }
        Ok(settings)
    }

    /// The defaults overlaid with one file's text; `file` names it in errors.
    pub fn from_toml_str(text: &str, file: &str) -> Result<Self, ConfigFileError> {
        let mut settings = Self::default();
        settings.overlay_toml_str(text, file)?;
        Ok(settings)
    }

    /// Changes the settings the file sets and leaves the others. On error nothing changes.
    pub fn overlay_file(&mut self, path: &Path) -> Result<(), ConfigFileError> {
        let text = std::fs::read_to_string(path).map_err(|err| ConfigFileError {
            message: format!("cannot read worker configuration: {err}"),
            ..ConfigFileError::new(path)
        })?;
        self.overlay_toml_str(&text, &path.display().to_string())
    }

    /// Changes the settings `text` sets and leaves the others. On error nothing changes.
    pub fn overlay_toml_str(&mut self, text: &str, file: &str) -> Result<(), ConfigFileError> {
        let reader = Reader { text, file };
        let root = DeTable::parse(text).map_err(|err| reader.syntax_error(&err))?;

        let mut updated = *self;
        for table in [IN_PROCESS_EVENTS, DOMAIN_EVENTS, EVENT_SYSTEM_METADATA] {
            let Some(entries) = reader.table(root.get_ref(), table)? else {
                continue;
            };
            // The map is sorted by key; report the first problem in file order instead.
            let mut entries: Vec<_> = entries.iter().collect();
            entries.sort_by_key(|(key, _)| key.span().start);
            for (key, value) in entries {
                let checked = reader.check(table, key, value)?;
                updated.set(key.get_ref(), checked);
            }
        }
        *self = updated;
        Ok(())
    }

    /// Copies the settings into an event system's configuration.
    pub fn apply_to(&self, config: &mut Config) {
        config.broadcast_buffer_size = self.broadcast_buffer_size;
        config.log_subscriber_errors = self.log_subscriber_errors;
        config.dispatch_timeout = Duration::from_millis(self.dispatch_timeout_ms);
        config.command_buffer_size = self.command_buffer_size;
        config.shutdown_drain_timeout = Duration::from_millis(self.shutdown_drain_timeout_ms);
        config.log_dropped_events = self.log_dropped_events;
        config.ffi_integration_enabled = self.ffi_integration_enabled;
        config.deduplication_cache_size = self.deduplication_cache_size;
    }

    // Only called with a key `Reader::check` accepted, whose value has that key's kind and fits
    // its range, so the conversions below cannot truncate.
    fn set(&mut self, key: &str, value: Checked) {
        match (key, value) {
            ("broadcast_buffer_size", Checked::Integer(n)) => {
                self.broadcast_buffer_size = n as usize;
            }
            ("log_subscriber_errors", Checked::Boolean(b)) => self.log_subscriber_errors = b,
            ("dispatch_timeout_ms", Checked::Integer(n)) => self.dispatch_timeout_ms = n,
            ("command_buffer_size", Checked::Integer(n)) => self.command_buffer_size = n as usize,
            ("shutdown_drain_timeout_ms", Checked::Integer(n)) => {
                self.shutdown_drain_timeout_ms = n;
            }
            ("log_dropped_events", Checked::Boolean(b)) => self.log_dropped_events = b,
            ("ffi_integration_enabled", Checked::Boolean(b)) => self.ffi_integration_enabled = b,
            ("deduplication_cache_size", Checked::Integer(n)) => {
                self.deduplication_cache_size = n as usize;
            }
            _ => unreachable!("{key} was checked against KEYS"),
        }
    }
}

/// Why a worker configuration file was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigFileError {
    pub file: String,
    /// The full dotted key concerned, such as `worker.mpsc_channels.domain_events.x`.
    pub key: Option<String>,
    /// 1-based line in `file`, where known.
    pub line: Option<usize>,
    pub message: String,
}

impl ConfigFileError {
    fn new(file: &Path) -> Self {
        Self {
            file: file.display().to_string(),
            key: None,
            line: None,
            message: String::new(),
        }
    }
}

impl fmt::Display for ConfigFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigFileError {}

/// One file's text, for turning spans into lines and values as written.
struct Reader<'a> {
    text: &'a str,
    file: &'a str,
}

impl Reader<'_> {
    /// The table at dotted `path`, if the file has it.
    fn table<'t, 'i>(
        &self,
        root: &'t DeTable<'i>,
        path: &str,
    ) -> Result<Option<&'t DeTable<'i>>, ConfigFileError> {
        let mut table = root;
        let mut walked = String::new();
        for segment in path.split('.') {
            if !walked.is_empty() {
                walked.push('.');
            }
            walked.push_str(segment);
            let Some((_, value)) = table.iter().find(|(key, _)| key.get_ref() == segment) else {
                return Ok(None);
            };
            table = match value.get_ref() {
                DeValue::Table(inner) => inner,
                other => {
                    let message = format!(
                        "{walked} must be a table, got {} {}",
                        other.type_str(),
                        self.written(value)
                    );
                    return Err(self.error(&walked, value, message));
                }
            };
        }
        Ok(Some(table))
    }

    fn check(
        &self,
        table: &str,
        key: &Spanned<std::borrow::Cow<'_, str>>,
        value: &Spanned<DeValue<'_>>,
    ) -> Result<Checked, ConfigFileError> {
        let dotted = format!("{table}.{}", key.get_ref());
        let Some((_, _, kind)) = KEYS
            .iter()
            .find(|(t, name, _)| *t == table && *name == key.get_ref())
        else {
            let known: Vec<&str> = KEYS
                .iter()
                .filter(|(t, _, _)| *t == table)
                .map(|(_, name, _)| *name)
                .collect();
            let message = format!("unknown key {dotted} (known keys: {})", known.join(", "));
            return Err(self.error(&dotted, key, message));
        };

        match (kind, value.get_ref()) {
            (Kind::Boolean, DeValue::Boolean(b)) => Ok(Checked::Boolean(*b)),
            (Kind::Integer { min, max }, DeValue::Integer(n)) => {
                let parsed = i64::from_str_radix(n.as_str(), n.radix()).ok();
                match parsed.filter(|n| (*min..=*max).contains(n)) {
                    Some(n) => Ok(Checked::Integer(n.unsigned_abs())),
                    None => {
                        let message = format!(
                            "{dotted} = {} is out of range (allowed {min}..={max})",
                            self.written(value)
                        );
                        Err(self.error(&dotted, value, message))
                    }
                }
            }
            (kind, other) => {
                let expected = match kind {
                    Kind::Boolean => "a boolean",
                    Kind::Integer { .. } => "an integer",
                };
                let message = format!(
                    "{dotted} must be {expected}, got {} {}",
                    other.type_str(),
                    self.written(value)
                );
                Err(self.error(&dotted, value, message))
            }
        }
    }

    /// The value as it is written in the file.
    fn written<T>(&self, value: &Spanned<T>) -> &str {
        self.text.get(value.span()).unwrap_or("?").trim()
    }

    fn line_at(&self, offset: usize) -> usize {
        let before = self.text.get(..offset).unwrap_or(self.text);
        before.bytes().filter(|b| *b == b'\n').count() + 1
    }

    fn error<T>(&self, key: &str, at: &Spanned<T>, message: String) -> ConfigFileError {
        ConfigFileError {
            file: self.file.to_owned(),
            key: Some(key.to_owned()),
            line: Some(self.line_at(at.span().start)),
            message,
        }
    }

    fn syntax_error(&self, err: &toml::de::Error) -> ConfigFileError {
        ConfigFileError {
            file: self.file.to_owned(),
            key: None,
            line: err.span().map(|span| self.line_at(span.start)),
            message: format!("invalid TOML: {}", err.message().trim_end()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    const LABEL: &str = "config/tasker/base/worker.toml";

    /// The configuration files shipped at the top of the repository.
    fn shipped() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/tasker")
    }

    fn refused(text: &str) -> ConfigFileError {
        WorkerSettings::from_toml_str(text, LABEL).unwrap_err()
    }

    /// A fresh directory under the system temp dir, removed when dropped.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir().join(format!(
                "tasker_events_config_{name}_{}",
                std::process::id()
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }

        fn write(&self, relative: &str, text: &str) {
            let path = self.0.join(relative);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn shipped_base_has_the_design_values() {
        let base = WorkerSettings::load(&shipped(), "development").unwrap();
        assert_eq!(base, WorkerSettings::default());
        let expected = WorkerSettings {
            broadcast_buffer_size: 2000,
            log_subscriber_errors: true,
            dispatch_timeout_ms: 5000,
            command_buffer_size: 1000,
            shutdown_drain_timeout_ms: 5000,
            log_dropped_events: true,
            ffi_integration_enabled: true,
            deduplication_cache_size: 10_000,
        };
        assert_eq!(base, expected);
    }

    #[test]
    fn shipped_test_environment_shrinks_buffers() {
        let test = WorkerSettings::load(&shipped(), "test").unwrap();
        let expected = WorkerSettings {
            broadcast_buffer_size: 1000,
            log_subscriber_errors: true,
            dispatch_timeout_ms: 2000,
            command_buffer_size: 100,
            shutdown_drain_timeout_ms: 1000,
            log_dropped_events: true,
            ffi_integration_enabled: true,
            deduplication_cache_size: 1000,
        };
        assert_eq!(test, expected);
    }

    #[test]
    fn shipped_production_environment_grows_buffers_and_keeps_base_metadata() {
        let production = WorkerSettings::load(&shipped(), "production").unwrap();
        let expected = WorkerSettings {
            broadcast_buffer_size: 5000,
            log_subscriber_errors: false,
            dispatch_timeout_ms: 10_000,
            command_buffer_size: 5000,
            shutdown_drain_timeout_ms: 10_000,
            log_dropped_events: false,
            ffi_integration_enabled: true,
            deduplication_cache_size: 10_000,
        };
        assert_eq!(production, expected);
    }

    #[test]
    fn overlay_changes_only_the_keys_it_sets() {
        let mut settings = WorkerSettings::from_toml_str(
            "[worker.mpsc_channels.domain_events]\ncommand_buffer_size = 7\n",
            "base",
        )
        .unwrap();
        settings
            .overlay_toml_str(
                "[worker.mpsc_channels.in_process_events]\nlog_subscriber_errors = false\n",
                "overlay",
            )
            .unwrap();
        let expected = WorkerSettings {
            command_buffer_size: 7,
            log_subscriber_errors: false,
            ..WorkerSettings::default()
        };
        assert_eq!(settings, expected);
    }

    #[test]
    fn a_refused_overlay_changes_nothing() {
        let mut settings = WorkerSettings::default();
        let text = "[worker.mpsc_channels.domain_events]\n\
                    command_buffer_size = 7\n\
                    log_dropped_events = \"no\"\n";
        assert!(settings.overlay_toml_str(text, "overlay").is_err());
        assert_eq!(settings, WorkerSettings::default());
    }

    #[test]
    fn other_tables_of_the_worker_are_ignored() {
        let text = "\
[common]
database_url = \"postgres://localhost/tasker\"

[worker.web]
bind_address = \"0.0.0.0:8081\"

[worker.mpsc_channels.command_processor]
command_buffer_size = 2000

[worker.event_systems.worker]
deployment_mode = \"Hybrid\"

[worker.mpsc_channels.in_process_events]
dispatch_timeout_ms = 1_500
";
        let settings = WorkerSettings::from_toml_str(text, LABEL).unwrap();
        let expected = WorkerSettings {
            dispatch_timeout_ms: 1500,
            ..WorkerSettings::default()
        };
        assert_eq!(settings, expected);
        assert_eq!(
            WorkerSettings::from_toml_str("", LABEL).unwrap(),
            WorkerSettings::default()
        );
    }

    #[test]
    fn dotted_keys_and_inline_tables_are_read_like_sections() {
        let text = "\
[worker]
mpsc_channels.domain_events = { command_buffer_size = 12, log_dropped_events = false }
event_systems.worker.metadata.in_process_events.deduplication_cache_size = 0
";
        let settings = WorkerSettings::from_toml_str(text, LABEL).unwrap();
        assert_eq!(settings.command_buffer_size, 12);
        assert!(!settings.log_dropped_events);
        assert_eq!(settings.deduplication_cache_size, 0);
    }

    #[test]
    fn unknown_key_is_named_with_the_known_ones() {
        let err = refused(
            "[worker.mpsc_channels.domain_events]\n\
             command_buffer_size = 10\n\
             comand_buffer_size = 10\n",
        );
        assert_eq!(
            err.key.as_deref(),
            Some("worker.mpsc_channels.domain_events.comand_buffer_size")
        );
        assert_eq!(
            err.to_string(),
            "config/tasker/base/worker.toml:3: unknown key \
             worker.mpsc_channels.domain_events.comand_buffer_size (known keys: \
             command_buffer_size, shutdown_drain_timeout_ms, log_dropped_events)"
        );

        let err = refused("[worker.event_systems.worker.metadata.in_process_events.extra]\n");
        let message = err.to_string();
        assert!(
            message.contains(
                "unknown key worker.event_systems.worker.metadata.in_process_events.extra"
            ),
            "{message}"
        );
        assert!(
            message.contains("ffi_integration_enabled, deduplication_cache_size"),
            "{message}"
        );
    }

    #[test]
    fn wrong_type_names_the_expected_type_and_the_value() {
        let err = refused(
            "[worker.mpsc_channels.in_process_events]\n\
             broadcast_buffer_size = \"2000\"\n",
        );
        assert_eq!(
            err.to_string(),
            "config/tasker/base/worker.toml:2: \
             worker.mpsc_channels.in_process_events.broadcast_buffer_size must be an integer, \
             got string \"2000\""
        );

        let err = refused("[worker.mpsc_channels.domain_events]\nlog_dropped_events = 1\n");
        assert_eq!(
            err.message,
            "worker.mpsc_channels.domain_events.log_dropped_events must be a boolean, \
             got integer 1"
        );

        let err = refused("[worker.mpsc_channels.domain_events]\ncommand_buffer_size = 1.5\n");
        assert!(
            err.message.ends_with("must be an integer, got float 1.5"),
            "{err}"
        );

        let err = refused("[worker]\nmpsc_channels = 3\n");
        assert_eq!(err.key.as_deref(), Some("worker.mpsc_channels"));
        assert_eq!(
            err.to_string(),
            "config/tasker/base/worker.toml:2: worker.mpsc_channels must be a table, got integer 3"
        );
    }

    #[test]
    fn out_of_range_values_are_refused_with_the_allowed_range() {
        let err = refused("[worker.mpsc_channels.domain_events]\ncommand_buffer_size = 0\n");
        assert_eq!(
            err.to_string(),
            "config/tasker/base/worker.toml:2: \
             worker.mpsc_channels.domain_events.command_buffer_size = 0 is out of range \
             (allowed 1..=1000000)"
        );

        let cases = [
            (
                "in_process_events",
                "broadcast_buffer_size = 1_000_001",
                "1..=1000000",
            ),
            (
                "in_process_events",
                "dispatch_timeout_ms = 0",
                "1..=3600000",
            ),
            (
                "domain_events",
                "shutdown_drain_timeout_ms = 3600001",
                "1..=3600000",
            ),
            ("domain_events", "command_buffer_size = -5", "1..=1000000"),
            (
                "domain_events",
                "command_buffer_size = 99999999999999999999",
                "1..=1000000",
            ),
        ];
        for (table, line, allowed) in cases {
            let err = refused(&format!("[worker.mpsc_channels.{table}]\n{line}\n"));
            let value = line.split(" = ").nth(1).unwrap();
            let expected = format!("= {value} is out of range (allowed {allowed})");
            assert!(err.message.ends_with(&expected), "{err}");
        }

        let metadata = "[worker.event_systems.worker.metadata.in_process_events]\n";
        let err = refused(&format!("{metadata}deduplication_cache_size = 10000001\n"));
        assert!(err.message.ends_with("(allowed 0..=10000000)"), "{err}");
        let limits = format!("{metadata}deduplication_cache_size = 10_000_000\n");
        assert!(WorkerSettings::from_toml_str(&limits, LABEL).is_ok());
    }

    #[test]
    fn syntax_error_names_file_and_line() {
        let err = refused("[worker.mpsc_channels.domain_events]\ncommand_buffer_size = \n");
        assert_eq!(err.line, Some(2));
        assert_eq!(err.key, None);
        let message = err.to_string();
        assert!(
            message.starts_with("config/tasker/base/worker.toml:2: invalid TOML: "),
            "{message}"
        );

        let err =
            refused("[worker.mpsc_channels.domain_events]\n[worker.mpsc_channels.domain_events]\n");
        assert_eq!(err.line, Some(2), "{err}");
    }

    #[test]
    fn missing_base_file_is_an_error_but_a_missing_environment_is_not() {
        let dir = TempDir::new("missing_base");
        let err = WorkerSettings::load(&dir.0, "test").unwrap_err();
        let base = dir.0.join("base/worker.toml").display().to_string();
        assert_eq!(err.file, base);
        assert!(
            err.message
                .starts_with("cannot read worker configuration: "),
            "{err}"
        );
        assert!(
            err.to_string().contains("No such file or directory"),
            "{err}"
        );

        dir.write(
            "base/worker.toml",
            "[worker.mpsc_channels.domain_events]\ncommand_buffer_size = 3\n",
        );
        let settings = WorkerSettings::load(&dir.0, "staging").unwrap();
        assert_eq!(settings.command_buffer_size, 3);
    }

    #[test]
    fn environment_file_errors_name_that_file() {
        let dir = TempDir::new("bad_environment");
        dir.write("base/worker.toml", "");
        dir.write(
            "environments/test/worker.toml",
            "[worker.mpsc_channels.domain_events]\n\nlog_dropped_events = \"yes\"\n",
        );
        let err = WorkerSettings::load(&dir.0, "test").unwrap_err();
        let file = dir
            .0
            .join("environments/test/worker.toml")
            .display()
            .to_string();
        assert_eq!(err.file, file);
        assert_eq!(err.line, Some(3));
    }

    #[test]
    fn environment_names_cannot_leave_the_config_directory() {
        for environment in ["", "../base", "prod/uction", "a b"] {
            let err = WorkerSettings::load(&shipped(), environment).unwrap_err();
            assert!(err.message.starts_with("invalid environment "), "{err}");
            assert!(err.message.contains(&format!("{environment:?}")), "{err}");
        }
    }

    #[test]
    fn apply_to_sets_every_setting_on_the_core_config() {
        let settings = WorkerSettings {
            broadcast_buffer_size: 11,
            log_subscriber_errors: false,
            dispatch_timeout_ms: 12,
            command_buffer_size: 13,
            shutdown_drain_timeout_ms: 14,
            log_dropped_events: false,
            ffi_integration_enabled: false,
            deduplication_cache_size: 15,
        };
        let mut config = Config {
            database_url: Some("postgres://localhost/db".into()),
            ..Config::default()
        };
        settings.apply_to(&mut config);
        let expected = Config {
            database_url: Some("postgres://localhost/db".into()),
            broadcast_buffer_size: 11,
            log_subscriber_errors: false,
            dispatch_timeout: Duration::from_millis(12),
            command_buffer_size: 13,
            shutdown_drain_timeout: Duration::from_millis(14),
            log_dropped_events: false,
            ffi_integration_enabled: false,
            deduplication_cache_size: 15,
            ..Config::default()
        };
        assert_eq!(config, expected);
    }
}
