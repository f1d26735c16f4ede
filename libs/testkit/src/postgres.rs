//! A Postgres cluster of a test's own, for the tests that crash it.
//!
//! The shared test cluster (`OF_TEST_PG`) must never go away under the other
//! tests; a test that stops Postgres the hard way starts its own cluster from
//! the same binaries (`OF_TEST_PG_BIN`, exported by `scripts/test`). As root,
//! Postgres runs as the `postgres` user, as `scripts/lib.sh` runs it.

use std::path::PathBuf;
use std::process::Command;

/// A throwaway cluster on a free port; stopped and deleted when dropped.
#[derive(Debug)]
pub struct PrivatePostgres {
    /// Its admin URL (`postgres://postgres@127.0.0.1:PORT`), as `OF_TEST_PG`.
    pub admin_url: String,
    data: PathBuf,
    port: u16,
    bin: PathBuf,
}

impl PrivatePostgres {
    /// Creates the cluster (fsync off: the test crashes processes, not the machine) and starts it.
    pub fn start() -> Self {
        let bin =
            PathBuf::from(std::env::var("OF_TEST_PG_BIN").expect(
                "OF_TEST_PG_BIN is not set: run the tests with scripts/test, which names the Postgres binaries",
            ));
        let data = std::env::temp_dir().join(format!("orderflow-pg-{}", crate::unique_id()));
        std::fs::create_dir_all(&data).expect("create the cluster's directory");
        if as_root() {
            run(Command::new("chown").arg("postgres:postgres").arg(&data), "chown the cluster's directory");
        }
        let port = crate::free_port();
        let cluster = Self { admin_url: format!("postgres://postgres@127.0.0.1:{port}"), data, port, bin };
        run(
            cluster.command("initdb").arg("-D").arg(cluster.data.join("pg")).args([
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
            ]),
            "initdb",
        );
        cluster.restart();
        cluster
    }

    /// `pg_ctl stop -m immediate`: every backend killed at once, no
    /// checkpoint; the next start recovers from the WAL.
    pub fn crash(&self) {
        run(&mut self.stop_immediately(), "pg_ctl stop");
    }

    /// Starts the cluster (again) and waits until it accepts connections.
    pub fn restart(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off -c max_connections=200",
            self.port,
            self.data.display()
        );
        run(
            self.pg_ctl()
                .arg("-l")
                .arg(self.data.join("postgres.log"))
                .args(["-w", "-t", "60", "-o", &options, "start"]),
            "pg_ctl start",
        );
    }

    /// `pg_ctl -D <its data directory>`.
    fn pg_ctl(&self) -> Command {
        let mut command = self.command("pg_ctl");
        command.arg("-D").arg(self.data.join("pg"));
        command
    }

    fn stop_immediately(&self) -> Command {
        let mut command = self.pg_ctl();
        command.args(["-m", "immediate", "stop"]);
        command
    }

    fn command(&self, binary: &str) -> Command {
        let path = self.bin.join(binary);
        if as_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(path).current_dir("/");
            command
        } else {
            Command::new(path)
        }
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = self.stop_immediately().output();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

fn as_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|out| out.stdout.starts_with(b"0\n"))
}

fn run(command: &mut Command, what: &str) {
    let output = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        output.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
