//! The client for a `tcp://` engine: mutual TLS, trusting exactly the roots
//! the operator named.
//!
//! bollard's own TLS client (`Docker::connect_with_ssl`) adds every root of
//! the system's store to the configured CA, so any public CA could vouch
//! for an engine's address; and a store with one unreadable certificate
//! makes every TLS engine fail to connect. This one trusts the `ca` file
//! alone, as `docker --tlsverify --tlscacert` does, or the system's roots
//! when the operator writes `ca = "system"` ([`CaRoots`]). It also keeps
//! idle connections for the next request, where bollard's opens one per
//! request (a TLS handshake per engine call).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bollard::{BollardRequest, ClientVersion, Docker};
use bridge_state::engines::CaRoots;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};

use super::ConnectError;

/// Idle connections to an engine are closed after this long.
const IDLE: Duration = Duration::from_secs(30);

/// A client for the engine at `addr` (`HOST:PORT`), with the TLS settings
/// of [`client_config`].
pub fn connect(
    addr: &str,
    config: rustls::ClientConfig,
    timeout_secs: u64,
    version: &ClientVersion,
) -> Result<Docker, bollard::errors::Error> {
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_only()
        .enable_http1()
        .wrap_connector(http);
    let client = Arc::new(
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .pool_idle_timeout(IDLE)
            .pool_timer(hyper_util::rt::TokioTimer::new())
            .build(https),
    );
    Docker::connect_with_custom_transport(
        move |req: BollardRequest| {
            let client = Arc::clone(&client);
            async move {
                client
                    .request(req)
                    .await
                    .map_err(bollard::errors::Error::from)
            }
        },
        Some(format!("https://{addr}")),
        timeout_secs,
        version,
    )
}

/// Trusts `ca`'s roots only, and presents `cert` with `key`.
pub fn client_config(
    ca: &CaRoots,
    cert: &Path,
    key: &Path,
) -> Result<rustls::ClientConfig, ConnectError> {
    let bad = |what: &str, path: &Path, why: String| {
        ConnectError::Config(format!(
            "engine TLS: {} is not a usable {what}: {why}",
            path.display()
        ))
    };
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        CaRoots::File(path) => {
            let certs = read_certs(path).map_err(|e| bad("CA (PEM certificates)", path, e))?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(bad(
                    "CA (PEM certificates)",
                    path,
                    "it holds no CA certificate".into(),
                ));
            }
        }
        CaRoots::System => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                let why = found
                    .errors
                    .first()
                    .map_or("the store is empty".to_owned(), ToString::to_string);
                return Err(ConnectError::Config(format!(
                    "engine TLS: ca = \"system\", but no trusted root could be read from the system's store ({why}); install ca-certificates, set SSL_CERT_FILE, or give ca a PEM file"
                )));
            }
        }
    }
    let chain = read_certs(cert).map_err(|e| bad("client certificate (PEM)", cert, e))?;
    let key_der = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| bad("client private key (PEM)", key, e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ConnectError::Config(format!("engine TLS: {e}")))?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key_der)
        .map_err(|e| {
            ConnectError::Config(format!(
                "engine TLS: {} and {} do not make a client identity: {e}",
                cert.display(),
                key.display()
            ))
        })
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| e.to_string())?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    if certs.is_empty() {
        return Err("it holds no PEM certificate".into());
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, KeyPair};

    /// A self-signed certificate and its key, and a second key, as files.
    fn files() -> (tempfile::TempDir, [std::path::PathBuf; 3]) {
        let dir = tempfile::tempdir().unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["runner".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let other = KeyPair::generate().unwrap();
        let paths = ["cert.pem", "key.pem", "other-key.pem"].map(|n| dir.path().join(n));
        std::fs::write(&paths[0], cert.pem()).unwrap();
        std::fs::write(&paths[1], key.serialize_pem()).unwrap();
        std::fs::write(&paths[2], other.serialize_pem()).unwrap();
        (dir, paths)
    }

    fn err(r: Result<rustls::ClientConfig, ConnectError>) -> String {
        r.map(|_| ()).unwrap_err().to_string()
    }

    #[test]
    fn a_usable_ca_and_identity_make_a_client() {
        let (_dir, [cert, key, _]) = files();
        let ca = CaRoots::File(cert.clone());
        assert!(client_config(&ca, &cert, &key).is_ok());
    }

    #[test]
    fn unusable_files_are_named_with_what_they_should_be() {
        let (dir, [cert, key, other_key]) = files();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let ca = CaRoots::File(cert.clone());

        let e = err(client_config(&CaRoots::File(empty.clone()), &cert, &key));
        assert!(
            e.contains(&format!("{} is not a usable CA", empty.display())),
            "{e}"
        );
        // A key where the CA belongs: no certificate in it.
        let e = err(client_config(&CaRoots::File(key.clone()), &cert, &key));
        assert!(e.contains("holds no PEM certificate"), "{e}");
        let e = err(client_config(&ca, &key, &key));
        assert!(e.contains("is not a usable client certificate"), "{e}");
        let e = err(client_config(&ca, &cert, &cert));
        assert!(e.contains("is not a usable client private key"), "{e}");
        let e = err(client_config(&ca, &cert, &other_key));
        assert!(e.contains("do not make a client identity"), "{e}");
    }
}
