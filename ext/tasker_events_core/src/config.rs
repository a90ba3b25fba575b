//! Settings of an event system. Names and defaults follow the worker configuration of the
//! design this gem implements; every setting here is used.

use std::time::Duration;

use crate::error::ValidationError;

/// About a minute of a busy worker publishing a thousand durable events a second.
pub const DEFAULT_DURABLE_BUFFER_SIZE: usize = 60_000;

/// How an event system is set up. `Config::default()` is ready to use without PostgreSQL:
/// durable events are then dropped with reason `no_database`.
#[derive(Clone, PartialEq, Eq)]
pub struct Config {
    /// PostgreSQL connection URL; only needed once a durable or broadcast event is published.
    pub database_url: Option<String>,
    /// Install PGMQ's SQL (never `CREATE EXTENSION`) before the first durable write.
    pub install_pgmq: bool,
    /// Capacity of the channel to the durable publisher.
    pub command_buffer_size: usize,
    /// Most durable events the durable publisher holds while PostgreSQL is unreachable
    /// (see [`crate::durable`]); beyond it they are dropped as `channel_full`.
    pub durable_buffer_size: usize,
    /// Capacity of each Rust subscriber's channel and of the drain thread's queue.
    pub broadcast_buffer_size: usize,
    /// Longest a Rust subscriber may take for one event before it is abandoned and counted.
    pub dispatch_timeout: Duration,
    /// Longest `shutdown` waits for queued events before counting them as dropped.
    pub shutdown_drain_timeout: Duration,
    /// Log subscriber errors and timeouts at warn.
    pub log_subscriber_errors: bool,
    /// Log each dropped event at warn.
    pub log_dropped_events: bool,
    /// Most events written to one queue in one `send_batch`.
    pub durable_batch_size: usize,
    /// Connections the durable publisher may hold.
    pub pool_size: u32,
    /// Hand events to the host language's drain thread (Ruby subscribers and publishers).
    /// When false, only Rust subscribers receive in-process events.
    pub ffi_integration_enabled: bool,
    /// How many recent (step_uuid, attempt, event name) keys are remembered, so that a step
    /// completion dispatched twice publishes once; 0 turns this off.
    pub deduplication_cache_size: usize,
    /// Longest wait for a PostgreSQL connection before a write counts as failed.
    pub connect_timeout: Duration,
    /// Capture durable events in memory instead of writing them to PGMQ (see
    /// [`crate::capture`]); `database_url` and `install_pgmq` are then ignored and nothing
    /// connects to PostgreSQL.
    pub test_mode: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            database_url: None,
            install_pgmq: false,
            command_buffer_size: 1000,
            durable_buffer_size: DEFAULT_DURABLE_BUFFER_SIZE,
            broadcast_buffer_size: 2000,
            dispatch_timeout: Duration::from_millis(5000),
            shutdown_drain_timeout: Duration::from_millis(5000),
            log_subscriber_errors: true,
            log_dropped_events: true,
            durable_batch_size: 500,
            pool_size: 2,
            ffi_integration_enabled: true,
            deduplication_cache_size: 10_000,
            connect_timeout: Duration::from_secs(2),
            test_mode: false,
        }
    }
}

impl Config {
    /// Checks every setting, naming the first one that is out of range.
    pub fn validate(&self) -> Result<(), ValidationError> {
        let positive = [
            ("command_buffer_size", self.command_buffer_size),
            ("durable_buffer_size", self.durable_buffer_size),
            ("broadcast_buffer_size", self.broadcast_buffer_size),
            ("durable_batch_size", self.durable_batch_size),
            ("pool_size", self.pool_size as usize),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(ValidationError::Config(format!(
                    "{name} must be at least 1"
                )));
            }
        }
        if self.dispatch_timeout.is_zero() {
            let message = "dispatch_timeout_ms must be at least 1".to_owned();
            return Err(ValidationError::Config(message));
        }
        Ok(())
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field(
                "database_url",
                &self.database_url.as_deref().map(redact_url),
            )
            .field("install_pgmq", &self.install_pgmq)
            .field("command_buffer_size", &self.command_buffer_size)
            .field("durable_buffer_size", &self.durable_buffer_size)
            .field("broadcast_buffer_size", &self.broadcast_buffer_size)
            .field("dispatch_timeout", &self.dispatch_timeout)
            .field("shutdown_drain_timeout", &self.shutdown_drain_timeout)
            .field("log_subscriber_errors", &self.log_subscriber_errors)
            .field("log_dropped_events", &self.log_dropped_events)
            .field("durable_batch_size", &self.durable_batch_size)
            .field("pool_size", &self.pool_size)
            .field("ffi_integration_enabled", &self.ffi_integration_enabled)
            .field("deduplication_cache_size", &self.deduplication_cache_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("test_mode", &self.test_mode)
            .finish()
    }
}

/// A connection URL with its password replaced by `***`, safe for errors and logs.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return redact_query(url);
    };
    let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
    let masked = if user.len() < userinfo.len() {
        format!("{user}:***")
    } else {
        user.into()
    };
    redact_query(&format!("{scheme}://{masked}@{host}{tail}"))
}

/// Masks a `password=` query parameter, the other place libpq URLs carry one.
fn redact_query(url: &str) -> String {
    let Some((base, query)) = url.split_once('?') else {
        return url.to_owned();
    };
    let params: Vec<String> = query
        .split('&')
        .map(|param| match param.split_once('=') {
            Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
            _ => param.to_owned(),
        })
        .collect();
    format!("{base}?{}", params.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        let cases = [
            (
                "postgres://u:secret@h:5432/db",
                "postgres://u:***@h:5432/db",
            ),
            ("postgres://u@h/db", "postgres://u@h/db"),
            (
                "postgres://h/db?user=u&password=secret",
                "postgres://h/db?user=u&password=***",
            ),
            ("postgres://u:p@ss@h/db", "postgres://u:***@h/db"),
            ("not a url", "not a url"),
        ];
        for (url, expected) in cases {
            assert_eq!(redact_url(url), expected);
        }
        let config = Config {
            database_url: Some("postgres://u:secret@h/db".into()),
            ..Config::default()
        };
        assert!(!format!("{config:?}").contains("secret"));
    }

    #[test]
    fn validate_names_the_setting() {
        let config = Config {
            command_buffer_size: 0,
            ..Config::default()
        };
        let message = config.validate().unwrap_err().to_string();
        assert!(message.contains("command_buffer_size"), "{message}");
        assert!(Config::default().validate().is_ok());
    }
}
