//! Certificates for HTTPS and WebTransport.
//!
//! Development: a self-signed ECDSA P-256 certificate valid 13 days (Chromium accepts a
//! self-signed certificate for WebTransport only through `serverCertificateHashes`, and only
//! when it is ECDSA and valid for at most 14 days). It is made in `DATA_DIR/certs` at start-up,
//! reused while it has more than [`RENEW_BEFORE_DAYS`] left, and renewed by a background task;
//! browsers get its SHA-256 hash with their join token.
//!
//! Production: the PEM files given by `--tls-cert/--tls-key` serve HTTPS, HTTP/3 and
//! WebTransport, and no hash is handed out (browsers validate the chain as usual).
//!
//! [`CertState`] holds the certificate in force. Replacing it swaps the key that one rustls
//! resolver hands out to every listener (HTTPS over TCP, HTTP/3, WebTransport): new handshakes
//! get it at once, open connections keep theirs. [`watch`] replaces it on SIGHUP and when the
//! files change.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::{bail, Context};
use chrono::{DateTime, Duration, Utc};
use parking_lot::{RwLock, RwLockReadGuard};
use rustls::{
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

pub const DEV_VALIDITY_DAYS: i64 = 13;
pub const RENEW_BEFORE_DAYS: i64 = 3;

/// The certificate in force, shared with the QUIC endpoint and the join handler.
#[derive(Debug, Clone)]
pub struct ActiveCert {
    pub cert_pem: PathBuf,
    pub key_pem: PathBuf,
    /// Hex SHA-256 of the leaf's DER, handed to browsers for self-signed certificates only.
    pub dev_hash_hex: Option<String>,
    pub not_after: Option<DateTime<Utc>>,
}

pub type SharedCert = Arc<CertState>;

/// The certificate in force and the rustls resolver that serves it.
pub struct CertState {
    active: RwLock<ActiveCert>,
    resolver: Arc<Resolver>,
}

impl CertState {
    /// Loads `active`'s files; fails if they are unusable.
    pub fn new(active: ActiveCert) -> anyhow::Result<Self> {
        let key = certified_key(&active.cert_pem, &active.key_pem)?;
        Ok(Self {
            active: RwLock::new(active),
            resolver: Arc::new(Resolver(RwLock::new(key))),
        })
    }

    pub fn read(&self) -> RwLockReadGuard<'_, ActiveCert> {
        self.active.read()
    }

    /// Puts `next` in force for new handshakes on every listener. On error nothing changes.
    pub fn replace(&self, next: ActiveCert) -> anyhow::Result<()> {
        let key = certified_key(&next.cert_pem, &next.key_pem)?;
        *self.resolver.0.write() = key;
        *self.active.write() = next;
        Ok(())
    }

    /// Re-reads the files in force (after they were replaced on disk).
    pub fn reload(&self) -> anyhow::Result<()> {
        let again = self.read().clone();
        self.replace(again)
    }

    /// A rustls configuration for HTTPS over TCP (h2, http/1.1) that follows reloads.
    pub fn https_config(&self) -> anyhow::Result<Arc<rustls::ServerConfig>> {
        let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(self.resolver.clone());
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(cfg))
    }

    /// A rustls configuration for QUIC with ALPN h3 (HTTP/3 and WebTransport) that follows
    /// reloads.
    pub fn h3_config(&self) -> anyhow::Result<Arc<rustls::ServerConfig>> {
        let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_cert_resolver(self.resolver.clone());
        cfg.alpn_protocols = vec![b"h3".to_vec()];
        Ok(Arc::new(cfg))
    }
}

/// Hands every handshake the key in force.
#[derive(Debug)]
struct Resolver(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.read().clone())
    }
}

fn certified_key(cert: &Path, key: &Path) -> anyhow::Result<Arc<CertifiedKey>> {
    let (chain, key) = load_rustls_pair(cert, key)?;
    let signer = rustls::crypto::ring::sign::any_supported_type(&key)
        .context("unsupported private key type")?;
    let ck = CertifiedKey::new(chain, signer);
    ck.keys_match()
        .context("certificate and key do not match")?;
    Ok(Arc::new(ck))
}

/// Reloads the certificate on SIGHUP, and when its files' modification time or size change
/// (checked every `every`), until `cancel`. A failed load keeps the old certificate and is
/// tried again at the next change or signal.
pub fn watch(cert: SharedCert, every: std::time::Duration, cancel: CancellationToken) {
    // The signal handler and the files' first stamps are taken before this returns, not in the
    // task: a SIGHUP or a file change right after start-up must not be missed (or, for the
    // signal, end the process), and a change made before the task first runs is a change.
    #[cfg(unix)]
    let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP");
            None
        }
    };
    let mut seen = file_stamps(&cert.read());
    tokio::spawn(async move {
        // The first check is one period from now (an interval's first tick is immediate).
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            #[cfg(unix)]
            let hangup = async {
                match hup.as_mut() {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            #[cfg(not(unix))]
            let hangup = std::future::pending::<()>();
            let why = tokio::select! {
                _ = cancel.cancelled() => return,
                _ = hangup => "SIGHUP",
                _ = tick.tick() => {
                    let now = file_stamps(&cert.read());
                    if now == seen { continue; }
                    "the files changed"
                }
            };
            let stamps = file_stamps(&cert.read());
            match cert.reload() {
                Ok(()) => {
                    seen = stamps;
                    tracing::info!(why, "certificate reloaded");
                }
                Err(e) => {
                    tracing::error!(
                        why,
                        error = format!("{e:#}"),
                        "reloading the certificate failed; keeping the old one"
                    )
                }
            }
        }
    });
}

type Stamp = Option<(SystemTime, u64)>;

fn file_stamps(c: &ActiveCert) -> (Stamp, Stamp) {
    let stamp = |p: &Path| {
        std::fs::metadata(p)
            .ok()
            .and_then(|m| Some((m.modified().ok()?, m.len())))
    };
    (stamp(&c.cert_pem), stamp(&c.key_pem))
}

#[derive(Serialize, Deserialize)]
struct DevCertMeta {
    not_after: DateTime<Utc>,
    sha256_hex: String,
    names: Vec<String>,
}

/// Loads (or makes) the certificate named by the configuration.
pub fn load_or_create(
    data_dir: &Path,
    tls: Option<(&Path, &Path)>,
    names: &[String],
    now: DateTime<Utc>,
) -> anyhow::Result<ActiveCert> {
    if let Some((cert, key)) = tls {
        // Fail at start-up, not at the first handshake, if the files are unusable.
        load_rustls_pair(cert, key)?;
        return Ok(ActiveCert {
            cert_pem: cert.to_owned(),
            key_pem: key.to_owned(),
            dev_hash_hex: None,
            not_after: None,
        });
    }
    let dir = data_dir.join("certs");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let cert_pem = dir.join("dev-cert.pem");
    let key_pem = dir.join("dev-key.pem");
    let meta_path = dir.join("dev-cert.json");
    if let Ok(text) = std::fs::read_to_string(&meta_path) {
        if let Ok(meta) = serde_json::from_str::<DevCertMeta>(&text) {
            let fresh = meta.not_after - now > Duration::days(RENEW_BEFORE_DAYS);
            let same_names = meta.names == names;
            if fresh && same_names && cert_pem.exists() && key_pem.exists() {
                return Ok(ActiveCert {
                    cert_pem,
                    key_pem,
                    dev_hash_hex: Some(meta.sha256_hex),
                    not_after: Some(meta.not_after),
                });
            }
        }
    }
    make_dev_cert(&dir, names, now)
}

/// Whether a development certificate should be replaced now.
pub fn needs_renewal(active: &ActiveCert, now: DateTime<Utc>) -> bool {
    matches!(active.not_after, Some(t) if t - now <= Duration::days(RENEW_BEFORE_DAYS))
}

/// Makes a new self-signed development certificate in `dir`.
pub fn make_dev_cert(
    dir: &Path,
    names: &[String],
    now: DateTime<Utc>,
) -> anyhow::Result<ActiveCert> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .context("generating an ECDSA P-256 key")?;
    let mut params =
        rcgen::CertificateParams::new(names.to_vec()).context("certificate subject names")?;
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        "QuicMeet development certificate",
    );
    // Backdate by an hour for clock skew; the whole validity stays under Chromium's 14 days.
    let not_before = now - Duration::hours(1);
    let not_after = now + Duration::days(DEV_VALIDITY_DAYS);
    params.not_before = time::OffsetDateTime::from_unix_timestamp(not_before.timestamp())?;
    params.not_after = time::OffsetDateTime::from_unix_timestamp(not_after.timestamp())?;
    let cert = params.self_signed(&key).context("self-signing")?;
    let digest = ring::digest::digest(&ring::digest::SHA256, cert.der());
    let sha256_hex = hex::encode(digest.as_ref());
    let cert_pem = dir.join("dev-cert.pem");
    let key_pem = dir.join("dev-key.pem");
    write_private(&key_pem, key.serialize_pem().as_bytes())?;
    std::fs::write(&cert_pem, cert.pem())?;
    let meta = DevCertMeta {
        not_after,
        sha256_hex: sha256_hex.clone(),
        names: names.to_vec(),
    };
    std::fs::write(dir.join("dev-cert.json"), serde_json::to_vec_pretty(&meta)?)?;
    tracing::info!(sha256 = %sha256_hex, until = %not_after, "made a development certificate");
    Ok(ActiveCert {
        cert_pem,
        key_pem,
        dev_hash_hex: Some(sha256_hex),
        not_after: Some(not_after),
    })
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(bytes)?;
    Ok(())
}

/// Reads a PEM certificate chain and private key for rustls.
pub fn load_rustls_pair(
    cert: &Path,
    key: &Path,
) -> anyhow::Result<(
    Vec<rustls::pki_types::CertificateDer<'static>>,
    rustls::pki_types::PrivateKeyDer<'static>,
)> {
    let mut r = std::io::BufReader::new(
        std::fs::File::open(cert).with_context(|| format!("opening {}", cert.display()))?,
    );
    let chain = rustls_pemfile::certs(&mut r)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("reading certificates from {}", cert.display()))?;
    if chain.is_empty() {
        bail!("{} holds no certificate", cert.display());
    }
    let mut r = std::io::BufReader::new(
        std::fs::File::open(key).with_context(|| format!("opening {}", key.display()))?,
    );
    let key = rustls_pemfile::private_key(&mut r)
        .with_context(|| format!("reading the key from {}", key.display()))?
        .with_context(|| format!("{} holds no private key", key.display()))?;
    Ok((chain, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_certificate_is_reused_then_renewed_near_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        let now = Utc::now();
        let a = load_or_create(dir.path(), None, &names, now).unwrap();
        let hash = a.dev_hash_hex.clone().unwrap();
        assert_eq!(hash.len(), 64);
        let total = a.not_after.unwrap() - (now - Duration::hours(1));
        assert!(
            total < Duration::days(14),
            "Chromium refuses certificates valid 14 days or more"
        );
        let b = load_or_create(dir.path(), None, &names, now + Duration::days(5)).unwrap();
        assert_eq!(b.dev_hash_hex.as_deref(), Some(hash.as_str()));
        assert!(needs_renewal(&b, now + Duration::days(11)));
        let c = load_or_create(dir.path(), None, &names, now + Duration::days(11)).unwrap();
        assert_ne!(c.dev_hash_hex.as_deref(), Some(hash.as_str()));
        // The hash handed to browsers is the SHA-256 of the certificate's DER.
        let (chain, _) = load_rustls_pair(&c.cert_pem, &c.key_pem).unwrap();
        let d = ring::digest::digest(&ring::digest::SHA256, chain[0].as_ref());
        assert_eq!(hex::encode(d.as_ref()), c.dev_hash_hex.unwrap());
    }
}
