//! Opt-in TLS for the links between processes (rustls, TLS 1.3 and 1.2, mutual authentication).
//!
//! Both ends of every link present a certificate signed by the cluster's certificate authority
//! and check the other's; the cookie handshake then runs inside the encrypted stream, as it does
//! on a plain one, so a peer needs both the cluster's certificate and its cookie.
//!
//! ```no_run
//! use places_net::{create_place_node, NodeOptions, Tls};
//!
//! // A fresh cluster CA and a certificate signed by it, passed to every node this program
//! // starts on its stdin (never on a command line or in a file nobody asked for).
//! let tls = Tls::generate()?;
//! let node = create_place_node("localhost", NodeOptions::new().tls(tls.clone()))?;
//! # let _ = node;
//! // Or certificates of your own: the CA's certificate, this node's chain and its key.
//! let mine = Tls::from_files("ca.pem", "node.pem", "node.key")?;
//! # let _ = mine;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A node started by hand takes the same three files: `PROGRAM --places-node --listen ADDR
//! --cookie-file COOKIE --tls-dir DIR`, where `DIR` holds `ca.pem`, `cert.pem` and `key.pem`
//! ([`Tls::write_dir`] writes them).

use std::fmt;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::error::NetError;

/// The name every node's certificate is made for (and checked against) unless told otherwise:
/// nodes are reached by addresses that say nothing about which certificate is theirs, so the
/// cluster shares one name.
pub const DEFAULT_SERVER_NAME: &str = "places-node";

/// The line that ends the TLS material a launcher writes to a node's stdin after the cookie.
pub(crate) const STDIN_END: &str = "-----END PLACES TLS-----";

/// TLS settings of a cluster: the authority whose certificates are trusted, this process's
/// certificate chain and key, and the name certificates are checked for.
///
/// Cheap to clone. See the [module documentation](self) for how nodes get it.
#[derive(Clone)]
pub struct Tls {
    inner: Arc<Inner>,
}

struct Inner {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
    name: String,
    client: Arc<rustls::ClientConfig>,
    server: Arc<rustls::ServerConfig>,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field("server_name", &self.inner.name)
            .finish_non_exhaustive()
    }
}

fn tls_err(what: &str, e: impl fmt::Display) -> NetError {
    NetError::Tls(format!("{what}: {e}"))
}

impl Tls {
    /// A new cluster authority and one certificate (for [`DEFAULT_SERVER_NAME`], good for
    /// both ends of a link) signed by it. The authority's private key is dropped once the
    /// certificate is signed: nothing else can join later with a certificate of this authority.
    ///
    /// # Errors
    ///
    /// [`NetError::Tls`] if a key cannot be made.
    pub fn generate() -> Result<Tls, NetError> {
        use rcgen::{
            BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
            IsCa, KeyPair, KeyUsagePurpose,
        };
        let err = |e: rcgen::Error| tls_err("generating the cluster certificates", e);
        let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "places cluster authority");
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca =
            CertifiedIssuer::self_signed(ca, KeyPair::generate().map_err(err)?).map_err(err)?;
        let mut leaf = CertificateParams::new(vec![DEFAULT_SERVER_NAME.to_owned()]).map_err(err)?;
        leaf.distinguished_name
            .push(DnType::CommonName, "places node");
        leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        leaf.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate().map_err(err)?;
        let cert = leaf.signed_by(&key, &ca).map_err(err)?;
        Tls::from_pem(&ca.pem(), &cert.pem(), &key.serialize_pem())
    }

    /// TLS from PEM text: the authority's certificate(s) to trust, this process's certificate
    /// chain (its own first), and its private key (PKCS#8, PKCS#1 or SEC1).
    ///
    /// # Errors
    ///
    /// [`NetError::Tls`] naming what cannot be read or used.
    pub fn from_pem(ca: &str, cert: &str, key: &str) -> Result<Tls, NetError> {
        Tls::build(ca, cert, key, DEFAULT_SERVER_NAME)
    }

    /// TLS from three PEM files (see [`from_pem`](Self::from_pem)).
    ///
    /// # Errors
    ///
    /// [`NetError::Tls`] naming the file that cannot be read, or what is wrong in it.
    pub fn from_files(
        ca: impl AsRef<Path>,
        cert: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<Tls, NetError> {
        let read = |p: &Path| {
            std::fs::read_to_string(p).map_err(|e| tls_err(&format!("reading {}", p.display()), e))
        };
        Tls::from_pem(
            &read(ca.as_ref())?,
            &read(cert.as_ref())?,
            &read(key.as_ref())?,
        )
    }

    /// TLS from `ca.pem`, `cert.pem` and `key.pem` in `dir` (as [`write_dir`](Self::write_dir)
    /// leaves them).
    ///
    /// # Errors
    ///
    /// As [`from_files`](Self::from_files).
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Tls, NetError> {
        let d = dir.as_ref();
        Tls::from_files(d.join("ca.pem"), d.join("cert.pem"), d.join("key.pem"))
    }

    /// Writes `ca.pem`, `cert.pem` and `key.pem` into `dir` (created if missing; the key
    /// readable by its owner alone), for nodes started by hand with `--tls-dir DIR`.
    ///
    /// # Errors
    ///
    /// [`NetError::Tls`] naming the file that cannot be written.
    pub fn write_dir(&self, dir: impl AsRef<Path>) -> Result<(), NetError> {
        let d = dir.as_ref();
        let werr = |p: &Path, e: std::io::Error| tls_err(&format!("writing {}", p.display()), e);
        std::fs::create_dir_all(d).map_err(|e| werr(d, e))?;
        for (file, text, secret) in [
            ("ca.pem", &self.inner.ca_pem, false),
            ("cert.pem", &self.inner.cert_pem, false),
            ("key.pem", &self.inner.key_pem, true),
        ] {
            let p = d.join(file);
            let mut o = std::fs::OpenOptions::new();
            o.write(true).create(true).truncate(true);
            #[cfg(unix)]
            if secret {
                use std::os::unix::fs::OpenOptionsExt;
                o.mode(0o600);
            }
            let _ = secret;
            let mut f = o.open(&p).map_err(|e| werr(&p, e))?;
            std::io::Write::write_all(&mut f, text.as_bytes()).map_err(|e| werr(&p, e))?;
        }
        Ok(())
    }

    /// The same material, with certificates checked for `name` instead of
    /// [`DEFAULT_SERVER_NAME`] (every node's certificate must be valid for it).
    ///
    /// # Errors
    ///
    /// [`NetError::Tls`] if `name` is no DNS name or IP address.
    pub fn with_server_name(&self, name: &str) -> Result<Tls, NetError> {
        let i = &self.inner;
        Tls::build(&i.ca_pem, &i.cert_pem, &i.key_pem, name)
    }

    /// The name certificates are checked for.
    pub fn server_name(&self) -> &str {
        &self.inner.name
    }

    /// The authority's certificate(s), PEM.
    pub fn ca_pem(&self) -> &str {
        &self.inner.ca_pem
    }

    fn build(ca: &str, cert: &str, key: &str, name: &str) -> Result<Tls, NetError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(ca.as_bytes()) {
            let c = c.map_err(|e| tls_err("reading the authority's certificate", e))?;
            roots
                .add(c)
                .map_err(|e| tls_err("the authority's certificate", e))?;
        }
        if roots.is_empty() {
            return Err(NetError::Tls(
                "no authority certificate (a PEM `CERTIFICATE` block) to trust".into(),
            ));
        }
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| tls_err("reading the certificate chain", e))?;
        if chain.is_empty() {
            return Err(NetError::Tls(
                "no certificate (a PEM `CERTIFICATE` block) in the certificate chain".into(),
            ));
        }
        let private = PrivateKeyDer::from_pem_slice(key.as_bytes())
            .map_err(|e| tls_err("reading the private key", e))?;
        ServerName::try_from(name.to_owned())
            .map_err(|e| tls_err(&format!("the server name {name:?}"), e))?;
        let roots = Arc::new(roots);
        let client = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_err("the TLS versions", e))?
            .with_root_certificates(roots.clone())
            .with_client_auth_cert(chain.clone(), private.clone_key())
            .map_err(|e| tls_err("the certificate and key", e))?;
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider.clone())
                .build()
                .map_err(|e| tls_err("the authority's certificate", e))?;
        let server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_err("the TLS versions", e))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, private)
            .map_err(|e| tls_err("the certificate and key", e))?;
        Ok(Tls {
            inner: Arc::new(Inner {
                ca_pem: ca.to_owned(),
                cert_pem: cert.to_owned(),
                key_pem: key.to_owned(),
                name: name.to_owned(),
                client: Arc::new(client),
                server: Arc::new(server),
            }),
        })
    }

    /// The client side of a fresh link.
    pub(crate) fn client_connection(&self) -> Result<rustls::ClientConnection, NetError> {
        let name = ServerName::try_from(self.inner.name.clone())
            .map_err(|e| tls_err("the server name", e))?;
        rustls::ClientConnection::new(self.inner.client.clone(), name)
            .map_err(|e| tls_err("starting TLS", e))
    }

    /// The server side's configuration.
    pub(crate) fn server_config(&self) -> Arc<rustls::ServerConfig> {
        self.inner.server.clone()
    }

    /// What the node side of a link accepts with.
    pub(crate) fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.inner.server.clone())
    }

    /// The material as a launcher writes it to a node's stdin after the cookie: the name, then
    /// the three PEM texts, each ended by [`STDIN_END`].
    pub(crate) fn to_stdin(&self) -> String {
        let i = &self.inner;
        let mut s = format!("{}\n", i.name);
        for text in [&i.ca_pem, &i.cert_pem, &i.key_pem] {
            s.push_str(text.trim_end());
            s.push('\n');
            s.push_str(STDIN_END);
            s.push('\n');
        }
        s
    }

    /// Reads what [`to_stdin`](Self::to_stdin) wrote, a line at a time.
    pub(crate) fn from_stdin(
        mut read_line: impl FnMut() -> Option<String>,
    ) -> Result<Tls, NetError> {
        let name = read_line()
            .ok_or_else(|| NetError::Tls("no TLS material on stdin".into()))?
            .trim()
            .to_owned();
        let mut parts: Vec<String> = Vec::new();
        let mut pem = String::new();
        for _ in 0..100_000 {
            let line = read_line()
                .ok_or_else(|| NetError::Tls(format!("stdin ended before {STDIN_END}")))?;
            if line.trim_end() == STDIN_END {
                parts.push(std::mem::take(&mut pem));
                if let [ca, cert, key] = &parts[..] {
                    return Tls::build(ca, cert, key, &name);
                }
                continue;
            }
            pem.push_str(line.trim_end());
            pem.push('\n');
        }
        Err(NetError::Tls("too much TLS material on stdin".into()))
    }
}

/// Plaintext a TLS write takes at a time (four records).
const TLS_CHUNK: usize = 64 << 10;

/// Hands up to [`TLS_CHUNK`] bytes of `bufs` to `session` to encrypt (the caller sends the
/// ciphertext); how many it took.
pub(crate) fn take_plaintext(
    session: &mut rustls::Connection,
    bufs: &[std::io::IoSlice<'_>],
) -> std::io::Result<usize> {
    use std::io::Write;
    let mut taken = 0;
    for b in bufs {
        if taken >= TLS_CHUNK {
            break;
        }
        let n = session
            .writer()
            .write(&b[..b.len().min(TLS_CHUNK - taken)])?;
        taken += n;
        if n < b.len() {
            break;
        }
    }
    Ok(taken)
}

/// The cluster's TLS, once known in this process.
static TLS: OnceLock<Tls> = OnceLock::new();

/// Makes every link this process makes or accepts from now on use `tls` (links already made
/// keep what they have). A node started with TLS, and a program that starts a node with
/// [`NodeOptions::tls`](crate::NodeOptions::tls), take it up by themselves; the first one set
/// stays. [`RemoteNode::connect`](crate::RemoteNode::connect) and
/// [`NodeAddr::connect`](crate::NodeAddr::connect) use it.
pub fn use_cluster_tls(tls: &Tls) {
    let _ = TLS.set(tls.clone());
}

/// The cluster's TLS in this process, if any (see [`use_cluster_tls`]).
pub fn cluster_tls() -> Option<Tls> {
    TLS.get().cloned()
}
