//! This host's Docker engine reached a second way, as a remote engine is:
//! over TCP with mutual TLS, through a proxy bound to 127.0.0.1 that
//! forwards to the local socket. The certificates (a CA, the proxy's
//! server certificate for 127.0.0.1, the runner's client certificate) are
//! made here with rcgen; the proxy refuses clients without one signed by
//! the CA, as `dockerd --tlsverify` does.
//!
//! [`TlsEngine::stop`] drops the listener and every open connection, as an
//! engine host that goes away does; [`TlsEngine::restart`] listens again
//! on the same port.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use tokio::net::{TcpListener, UnixStream};
use tokio::sync::watch;

/// The PEM files, in a directory removed on drop.
pub struct Certs {
    pub dir: tempfile::TempDir,
}

impl Certs {
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A CA; a server certificate for 127.0.0.1 and localhost; a client
    /// certificate. Each key beside its certificate, owner-only.
    pub fn make() -> anyhow::Result<Self> {
        use std::os::unix::fs::OpenOptionsExt;
        let dir = tempfile::tempdir()?;
        let write = |name: &str, pem: String| -> anyhow::Result<()> {
            use std::io::Write;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(dir.path().join(name))?
                .write_all(pem.as_bytes())?;
            Ok(())
        };
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;
        write("ca.pem", ca.pem())?;
        for (who, names) in [
            (
                "server",
                vec!["127.0.0.1".to_owned(), "localhost".to_owned()],
            ),
            ("client", vec!["runner".to_owned()]),
        ] {
            let key = KeyPair::generate()?;
            let cert = CertificateParams::new(names)?.signed_by(&key, &ca)?;
            write(&format!("{who}-cert.pem"), cert.pem())?;
            write(&format!("{who}-key.pem"), key.serialize_pem())?;
        }
        Ok(Self { dir })
    }
}

/// The TLS proxy in front of this host's engine.
pub struct TlsEngine {
    pub certs: Certs,
    pub port: u16,
    stop: watch::Sender<bool>,
}

impl TlsEngine {
    /// Listens on 127.0.0.1, on a free port.
    pub async fn start() -> anyhow::Result<Self> {
        let certs = Certs::make()?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let (stop, _) = watch::channel(false);
        let engine = Self { certs, port, stop };
        engine.serve(listener)?;
        Ok(engine)
    }

    /// `runner --engine` keys for this engine, named `name`.
    pub fn engine_flag(&self, name: &str) -> String {
        format!(
            "name={name},url=tcp://127.0.0.1:{},ca={},cert={},key={}",
            self.port,
            self.certs.path("ca.pem").display(),
            self.certs.path("client-cert.pem").display(),
            self.certs.path("client-key.pem").display(),
        )
    }

    /// Closes the listener and every connection through it.
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }

    /// Listens again on the same port.
    pub async fn restart(&self) -> anyhow::Result<()> {
        self.stop.send_replace(false);
        let listener = TcpListener::bind(("127.0.0.1", self.port))
            .await
            .with_context(|| format!("cannot listen on 127.0.0.1:{} again", self.port))?;
        self.serve(listener)
    }

    fn serve(&self, listener: TcpListener) -> anyhow::Result<()> {
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config(&self.certs)?));
        let socket = docker_socket();
        let mut stopped = self.stop.subscribe();
        tokio::spawn(async move {
            loop {
                let tcp = tokio::select! {
                    r = listener.accept() => match r {
                        Ok((tcp, _)) => tcp,
                        Err(_) => continue,
                    },
                    _ = stopped.wait_for(|s| *s) => return,
                };
                let (acceptor, socket) = (acceptor.clone(), socket.clone());
                let mut stopped = stopped.clone();
                tokio::spawn(async move {
                    let pipe = async {
                        let mut tls = acceptor.accept(tcp).await?;
                        let mut unix = UnixStream::connect(&socket).await?;
                        tokio::io::copy_bidirectional(&mut tls, &mut unix).await?;
                        anyhow::Ok(())
                    };
                    tokio::select! {
                        _ = pipe => {}
                        _ = stopped.wait_for(|s| *s) => {}
                    }
                });
            }
        });
        Ok(())
    }
}

impl Drop for TlsEngine {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The local engine's socket: DOCKER_HOST when it names one.
fn docker_socket() -> PathBuf {
    std::env::var("DOCKER_HOST")
        .ok()
        .and_then(|h| h.strip_prefix("unix://").map(PathBuf::from))
        .unwrap_or_else(|| "/var/run/docker.sock".into())
}

/// Mutual TLS: the server certificate, and client certificates checked
/// against the CA.
fn server_config(certs: &Certs) -> anyhow::Result<rustls::ServerConfig> {
    let read_certs = |p: &Path| -> anyhow::Result<Vec<CertificateDer<'static>>> {
        Ok(CertificateDer::pem_file_iter(p)?.collect::<Result<_, _>>()?)
    };
    let mut roots = rustls::RootCertStore::empty();
    for c in read_certs(&certs.path("ca.pem"))? {
        roots.add(c)?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots)).build()?;
    let key = PrivateKeyDer::from_pem_file(certs.path("server-key.pem"))?;
    Ok(rustls::ServerConfig::builder()
        .with_client_cert_verifier(verifier)
        .with_single_cert(read_certs(&certs.path("server-cert.pem"))?, key)?)
}
