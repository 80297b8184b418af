//! This host's Docker engine reached as a remote engine over ssh is: a
//! loopback `sshd` (Debian's openssh-server; `.ci/run` installs it) started
//! here with its own host key, a login key made by `ssh-keygen`, and the
//! runner's `ssh` reading a config written here (a `Host` alias with the
//! port, the known host key, strict checking). The runner finds that `ssh`
//! first on its `PATH` ([`SshEngine::runner_env`]): a wrapper that adds
//! `-F CONFIG`, standing in for the `~/.ssh/config` a user would write.
//! Nothing outside the test's directory is read or written (no
//! `~/.ssh/known_hosts` entry is left behind).

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};

const SSHD: &str = "/usr/sbin/sshd";

/// The ssh config's name for the engine host.
pub const ALIAS: &str = "bridge-test-engine";

/// A loopback sshd in a directory removed on drop; killed on drop.
pub struct SshEngine {
    dir: tempfile::TempDir,
    sshd: Child,
    user: String,
}

/// True when sshd is installed; otherwise says so loudly, and fails the
/// test when `CI` is set (`.ci/run` installs it).
pub fn sshd_or_skip(test: &str) -> bool {
    if Path::new(SSHD).exists() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{test}: {SSHD} is missing and CI is set: install openssh-server");
    }
    eprintln!(
        "\n!!!!!!!! SKIPPED {test}: {SSHD} is missing (apt-get install openssh-server; set CI=1 to make this a failure) !!!!!!!!\n"
    );
    false
}

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    ensure!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

fn keygen(path: &Path) -> anyhow::Result<()> {
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "bridge-test", "-f"])
        .arg(path))
}

fn write(path: &Path, text: &str, mode: u32) -> anyhow::Result<()> {
    std::fs::write(path, text)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

impl SshEngine {
    pub fn start() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let at = |name: &str| dir.path().join(name);
        let user = String::from_utf8(Command::new("id").arg("-un").output()?.stdout)?
            .trim()
            .to_owned();
        keygen(&at("host_key"))?;
        keygen(&at("id"))?;
        keygen(&at("other_id"))?;
        std::fs::copy(at("id.pub"), at("authorized_keys"))?;
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
            .local_addr()?
            .port();
        let d = dir.path().display();
        write(
            &at("sshd_config"),
            &format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\n\
                 AuthorizedKeysFile {d}/authorized_keys\nAllowUsers {user}\nPubkeyAuthentication yes\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n\
                 PermitRootLogin prohibit-password\nStrictModes no\nLogLevel ERROR\n\
                 MaxStartups 200\nMaxSessions 200\n"
            ),
            0o600,
        )?;
        let host_key = std::fs::read_to_string(at("host_key.pub"))?;
        write(&at("known_hosts"), &format!("{ALIAS} {host_key}"), 0o600)?;
        write(
            &at("ssh_config"),
            &format!(
                "Host {ALIAS}\n  HostName 127.0.0.1\n  Port {port}\n  HostKeyAlias {ALIAS}\n\
                 \x20 UserKnownHostsFile {d}/known_hosts\n  StrictHostKeyChecking yes\n  LogLevel ERROR\n"
            ),
            0o600,
        )?;
        std::fs::create_dir(at("bin"))?;
        write(
            &at("bin/ssh"),
            &format!("#!/bin/sh\nexec /usr/bin/ssh -F {d}/ssh_config \"$@\"\n"),
            0o700,
        )?;
        // Root's sshd insists on its privilege-separation directory.
        if user == "root" {
            std::fs::create_dir_all("/run/sshd")?;
        }
        let sshd = Command::new(SSHD)
            .arg("-D")
            .arg("-f")
            .arg(at("sshd_config"))
            .arg("-E")
            .arg(at("sshd.log"))
            .stdin(Stdio::null())
            .spawn()
            .context("starting sshd")?;
        let mut engine = Self { dir, sshd, user };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
            if let Some(status) = engine.sshd.try_wait()? {
                let log = std::fs::read_to_string(engine.path("sshd.log")).unwrap_or_default();
                bail!("sshd exited with {status} before listening: {log}");
            }
            if Instant::now() > deadline {
                bail!("sshd did not listen on 127.0.0.1:{port} within 10 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // The login works before a runner depends on it.
        engine.check_login()?;
        Ok(engine)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn check_login(&mut self) -> anyhow::Result<()> {
        run(Command::new(self.path("bin/ssh"))
            .args(["-o", "BatchMode=yes", "-i"])
            .arg(self.path("id"))
            .arg(format!("{}@{ALIAS}", self.user))
            .args(["docker", "version", "--format", "{{.Server.Version}}"]))
        .context("logging in to the test sshd and reaching docker through it")
    }

    /// An `--engine` flag for this engine, logging in with the authorized
    /// key.
    pub fn engine_flag(&self, name: &str) -> String {
        format!(
            "name={name},url=ssh://{}@{ALIAS},identity={}",
            self.user,
            self.path("id").display()
        )
    }

    /// An `--engine` flag for this host with a key sshd does not accept.
    pub fn unauthorized_flag(&self, name: &str) -> String {
        format!(
            "name={name},url=ssh://{}@{ALIAS},identity={}",
            self.user,
            self.path("other_id").display()
        )
    }

    /// The runner's environment: the `ssh` wrapper first on its `PATH`.
    pub fn runner_env(&self) -> Vec<(String, String)> {
        let path = std::env::var("PATH").unwrap_or_default();
        vec![(
            "PATH".into(),
            format!("{}:{path}", self.path("bin").display()),
        )]
    }
}

impl Drop for SshEngine {
    fn drop(&mut self) {
        let _ = self.sshd.kill();
        let _ = self.sshd.wait();
    }
}
