//! A real PostgreSQL for the integration tests: the one `DATABASE_URL` names, or else a private
//! cluster started in a temporary directory and stopped when the [`TestDatabase`] is dropped.
//!
//! The private cluster uses trust authentication and listens on 127.0.0.1 only, on a port that
//! was free a moment before. PostgreSQL refuses to run as root, so when the tests run as root
//! the cluster belongs to the `postgres` OS user and every server command runs through
//! `runuser`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{SystemTime, UNIX_EPOCH};

/// Where the PostgreSQL binaries live on the Debian images this gem is built on.
const DEFAULT_BINDIR: &str = "/usr/lib/postgresql/15/bin";

/// The OS user a private cluster runs as when the tests run as root.
const CLUSTER_OWNER: &str = "postgres";

/// A database the tests may write to.
pub struct TestDatabase {
    url: String,
    // Held only so that dropping the database stops the cluster.
    _cluster: Option<Cluster>,
}

impl TestDatabase {
    /// Uses `DATABASE_URL` when it is set, otherwise starts a private cluster.
    pub fn start() -> Self {
        if let Some(url) = std::env::var("DATABASE_URL").ok().filter(|u| !u.is_empty()) {
            return Self {
                url,
                _cluster: None,
            };
        }
        let cluster = Cluster::start();
        let url = format!("postgres://postgres@127.0.0.1:{}/postgres", cluster.port);
        Self {
            url,
            _cluster: Some(cluster),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }
}

/// A runtime and pool of the test's own, for looking at the database from outside the code
/// under test (an event system runs its own runtime, which must not be entered from another).
pub fn inspection_pool(database: &TestDatabase) -> (tokio::runtime::Runtime, sqlx::PgPool) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime for the test");
    let connect = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(database.url());
    let pool = runtime
        .block_on(connect)
        .expect("connect to the test database");
    (runtime, pool)
}

/// A suffix that differs between runs, so that namespaces of one run never meet rows an
/// earlier run left in a shared `DATABASE_URL` database.
pub fn run_suffix() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    format!("{}_{}", std::process::id() % 100_000, nanos % 1_000_000)
}

struct Cluster {
    root: PathBuf,
    bindir: PathBuf,
    as_owner: bool,
    port: u16,
}

impl Cluster {
    fn start() -> Self {
        let root = std::env::temp_dir().join(format!("tasker_events_pg_{}", run_suffix()));
        std::fs::create_dir(&root).expect("create the cluster directory");
        let mut cluster = Self {
            root,
            bindir: bindir(),
            as_owner: running_as_root(),
            port: 0,
        };
        if cluster.as_owner {
            let owner = format!("{CLUSTER_OWNER}:");
            run(
                Command::new("chown").arg(&owner).arg(&cluster.root),
                "chown",
            );
        }

        let data = cluster.data_dir();
        let mut initdb = cluster.command("initdb");
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "-A", "trust"]);
        initdb.args(["-E", "UTF8", "--locale=C", "--no-sync"]);
        run(&mut initdb, "initdb");

        cluster.port = free_port();
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=40",
            cluster.port,
            cluster.root.display()
        );
        let mut start = cluster.command("pg_ctl");
        start.arg("-D").arg(&data).arg("-l").arg(cluster.log_file());
        start.args(["-w", "-t", "30", "-o", &options, "start"]);
        let output = start.output().expect("run pg_ctl start");
        if !output.status.success() {
            let log = std::fs::read_to_string(cluster.log_file()).unwrap_or_default();
            panic!("pg_ctl start failed: {}\n{log}", describe(&output));
        }
        cluster
    }

    fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    fn log_file(&self) -> PathBuf {
        self.root.join("postgres.log")
    }

    /// A command for one of the server binaries, run as the cluster's owner.
    fn command(&self, binary: &str) -> Command {
        let program = self.bindir.join(binary);
        if self.as_owner {
            let mut command = Command::new("runuser");
            command.args(["-u", CLUSTER_OWNER, "--"]).arg(program);
            command
        } else {
            Command::new(program)
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Immediate mode: the data is thrown away, so there is nothing worth a clean checkpoint.
        let data = self.data_dir();
        let stopped = self
            .command("pg_ctl")
            .arg("-D")
            .arg(&data)
            .args(["-m", "immediate", "-w", "stop"])
            .output();
        if !matches!(&stopped, Ok(output) if output.status.success()) {
            eprintln!(
                "could not stop the test cluster in {}: {stopped:?}",
                self.root.display()
            );
            return;
        }
        let _ignored = std::fs::remove_dir_all(&self.root);
    }
}

/// `DEFAULT_BINDIR` when it holds `initdb`, otherwise what `pg_config --bindir` says.
fn bindir() -> PathBuf {
    let default = Path::new(DEFAULT_BINDIR);
    if default.join("initdb").exists() {
        return default.to_owned();
    }
    let output = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .expect("no PostgreSQL found: set DATABASE_URL or install PostgreSQL (pg_config)");
    PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
}

fn running_as_root() -> bool {
    let output = run(Command::new("id").arg("-u"), "id -u");
    String::from_utf8_lossy(&output.stdout).trim() == "0"
}

/// A port nothing listens on right now. Another process could take it before PostgreSQL
/// binds it; `pg_ctl start` then fails with the reason in its log.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

fn run(command: &mut Command, what: &str) -> Output {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("could not run {what}: {e}"));
    assert!(
        output.status.success(),
        "{what} failed: {}",
        describe(&output)
    );
    output
}

fn describe(output: &Output) -> String {
    format!(
        "{}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}
