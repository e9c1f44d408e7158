//! TLS for Warren's listeners: certificates read from PEM files, re-read on demand (SIGHUP)
//! without touching the sessions already open, the client-certificate policy, and what a
//! session tells the rest of the broker (protocol, cipher, the login name of its certificate
//! for the EXTERNAL mechanism).
//!
//! rustls with the ring provider; TLS 1.2 and 1.3 only (rustls has nothing older).

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use parking_lot::RwLock;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use warren_broker::registry::{PeerCertDetails, TlsDetails};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate, X509Name};

/// Whether clients must present a certificate (RabbitMQ's `ssl_options.verify` with
/// `fail_if_no_peer_cert`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerifyPeer {
    /// No certificate is asked for.
    None,
    /// A certificate is asked for and, if presented, must chain to the CA; none is fine.
    Optional,
    /// A certificate chaining to the CA is required.
    Required,
}

impl FromStr for VerifyPeer {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(VerifyPeer::None),
            "optional" => Ok(VerifyPeer::Optional),
            "required" => Ok(VerifyPeer::Required),
            other => Err(format!("{other:?}: expected none, optional or required")),
        }
    }
}

/// Which part of a client certificate names the user of an EXTERNAL login (RabbitMQ's
/// `ssl_cert_login_from`, with `ssl_cert_login_san_type` folded in).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoginFrom {
    /// The subject's common name (CN).
    CommonName,
    /// The whole subject, as RabbitMQ writes it (`CN=alice,O=example`).
    DistinguishedName,
    /// The first DNS name among the subject alternative names.
    SanDns,
    /// The first e-mail address among the subject alternative names.
    SanEmail,
    /// The first URI among the subject alternative names.
    SanUri,
}

impl FromStr for LoginFrom {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "common_name" => Ok(LoginFrom::CommonName),
            "distinguished_name" => Ok(LoginFrom::DistinguishedName),
            "san_dns" => Ok(LoginFrom::SanDns),
            "san_email" => Ok(LoginFrom::SanEmail),
            "san_uri" => Ok(LoginFrom::SanUri),
            other => Err(format!(
                "{other:?}: expected common_name, distinguished_name, san_dns, san_email or san_uri"
            )),
        }
    }
}

/// Where a listener's certificate, key and client CA are, and how clients are checked.
#[derive(Clone, Debug)]
pub struct TlsSettings {
    /// The server's certificate chain (PEM), leaf first.
    pub cert_file: PathBuf,
    /// Its private key (PEM: PKCS#8, PKCS#1 RSA or SEC1 EC).
    pub key_file: PathBuf,
    /// The CA certificates client certificates must chain to (PEM).
    pub ca_file: Option<PathBuf>,
    pub verify_peer: VerifyPeer,
    pub login_from: LoginFrom,
    /// ALPN protocols offered (`http/1.1` for the management API; none for AMQP).
    pub alpn: Vec<Vec<u8>>,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: io::Error },
    #[error("{path}: {what}")]
    Pem { path: String, what: String },
    #[error("--tls-verify-peer {0:?} needs --tls-ca-file")]
    NoCa(VerifyPeer),
    #[error("{0}")]
    Rustls(String),
}

/// A TLS acceptor whose certificates can be replaced while it serves: each handshake takes
/// the configuration current at its start, so sessions already open keep theirs.
pub struct TlsServer {
    settings: TlsSettings,
    acceptor: RwLock<(TlsAcceptor, Validity)>,
}

/// When the certificates in use stop being valid: each certificate's notAfter.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Validity {
    /// The certificate file's chain, leaf first.
    pub cert_not_after: Vec<NotAfter>,
    /// The CA file's certificates (empty without one).
    pub ca_not_after: Vec<NotAfter>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotAfter {
    pub unix: i64,
    /// `2027-01-06 11:44:05` (UTC), as RabbitMQ's health check writes it.
    pub utc: String,
}

impl TlsServer {
    pub fn load(settings: TlsSettings) -> Result<Arc<TlsServer>, TlsError> {
        let loaded = load(&settings)?;
        Ok(Arc::new(TlsServer {
            settings,
            acceptor: RwLock::new(loaded),
        }))
    }

    /// Re-reads the certificate, key and CA files. On error the old ones stay in use.
    pub fn reload(&self) -> Result<(), TlsError> {
        *self.acceptor.write() = load(&self.settings)?;
        Ok(())
    }

    /// The validity of the certificates handshakes use now.
    pub fn validity(&self) -> Validity {
        self.acceptor.read().1.clone()
    }

    pub fn settings(&self) -> &TlsSettings {
        &self.settings
    }

    /// Runs the server side of a handshake on `stream`.
    pub async fn accept<S>(&self, stream: S) -> io::Result<(TlsStream<S>, TlsSession)>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let acceptor = self.acceptor.read().0.clone();
        let stream = acceptor.accept(stream).await?;
        let session = TlsSession::of(stream.get_ref().1, self.settings.login_from);
        Ok((stream, session))
    }
}

fn load(settings: &TlsSettings) -> Result<(TlsAcceptor, Validity), TlsError> {
    let certs = read_certs(&settings.cert_file)?;
    let ca_certs = match &settings.ca_file {
        Some(ca_file) => read_certs(ca_file)?,
        None => Vec::new(),
    };
    let validity = Validity {
        cert_not_after: not_after(&certs),
        ca_not_after: not_after(&ca_certs),
    };
    let acceptor = TlsAcceptor::from(server_config(settings, certs, ca_certs)?);
    Ok((acceptor, validity))
}

/// notAfter of each certificate rustls accepted; one that does not parse here is left out
/// (rustls has already refused a malformed server certificate).
fn not_after(certs: &[CertificateDer<'_>]) -> Vec<NotAfter> {
    certs
        .iter()
        .filter_map(|der| X509Certificate::from_der(der.as_ref()).ok())
        .map(|(_, cert)| {
            let time = &cert.validity().not_after;
            NotAfter {
                unix: time.timestamp(),
                utc: iso8601(time)
                    .replace('T', " ")
                    .trim_end_matches('Z')
                    .to_owned(),
            }
        })
        .collect()
}

fn server_config(
    settings: &TlsSettings,
    certs: Vec<CertificateDer<'static>>,
    ca_certs: Vec<CertificateDer<'static>>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let key_path = settings.key_file.display().to_string();
    let key =
        PrivateKeyDer::from_pem_file(&settings.key_file).map_err(|e| pem_error(&key_path, e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    let builder = match (settings.verify_peer, &settings.ca_file) {
        (VerifyPeer::None, _) => builder.with_no_client_auth(),
        (verify, None) => return Err(TlsError::NoCa(verify)),
        (verify, Some(ca_file)) => {
            let mut roots = RootCertStore::empty();
            for cert in ca_certs {
                roots
                    .add(cert)
                    .map_err(|e| TlsError::Rustls(format!("{}: {e}", ca_file.display())))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = match verify {
                VerifyPeer::Optional => verifier.allow_unauthenticated(),
                _ => verifier,
            };
            let verifier = verifier
                .build()
                .map_err(|e| TlsError::Rustls(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Rustls(format!("{}: {e}", settings.cert_file.display())))?;
    config.alpn_protocols = settings.alpn.clone();
    Ok(Arc::new(config))
}

fn read_certs(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| TlsError::Read {
        path: shown.clone(),
        source,
    })?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(&shown, e))?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: shown,
            what: "no certificate in the file".into(),
        });
    }
    Ok(certs)
}

fn pem_error(path: &str, e: rustls::pki_types::pem::Error) -> TlsError {
    match e {
        rustls::pki_types::pem::Error::Io(source) => TlsError::Read {
            path: path.to_owned(),
            source,
        },
        other => TlsError::Pem {
            path: path.to_owned(),
            what: other.to_string(),
        },
    }
}

/// What a finished handshake settled: what the management API shows of it, and the user an
/// EXTERNAL login is for, when a verified client certificate names one.
#[derive(Clone, Debug, Default)]
pub struct TlsSession {
    pub details: TlsDetails,
    pub login: Option<String>,
}

impl TlsSession {
    fn of(connection: &rustls::ServerConnection, login_from: LoginFrom) -> TlsSession {
        let protocol = match connection.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "tlsv1.3",
            Some(rustls::ProtocolVersion::TLSv1_2) => "tlsv1.2",
            _ => "unknown",
        };
        let suite = connection
            .negotiated_cipher_suite()
            .map(|s| format!("{:?}", s.suite()))
            .unwrap_or_default();
        let (key_exchange, cipher, hash) = split_suite(&suite);
        // The verifier has checked the chain; the leaf is first.
        let leaf = connection
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(|der| X509Certificate::from_der(der.as_ref()).ok())
            .map(|(_, cert)| cert);
        TlsSession {
            details: TlsDetails {
                protocol: protocol.into(),
                key_exchange,
                cipher,
                hash,
                peer_cert: leaf.as_ref().map(|cert| PeerCertDetails {
                    subject: distinguished_name(cert.subject()),
                    issuer: distinguished_name(cert.issuer()),
                    validity: format!(
                        "{} - {}",
                        iso8601(&cert.validity().not_before),
                        iso8601(&cert.validity().not_after)
                    ),
                }),
            },
            login: leaf.as_ref().and_then(|cert| login_name(cert, login_from)),
        }
    }
}

/// `TLS13_AES_256_GCM_SHA384` -> (`any`, `aes_256_gcm`, `sha384`);
/// `TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256` -> (`ecdhe_rsa`, `chacha20_poly1305`,
/// `sha256`), the way Erlang's ssl names them.
fn split_suite(suite: &str) -> (String, String, String) {
    let lower = suite.to_ascii_lowercase();
    let (kx, rest) = if let Some(rest) = lower.strip_prefix("tls13_") {
        ("any", rest)
    } else {
        let rest = lower.strip_prefix("tls_").unwrap_or(&lower);
        rest.split_once("_with_").unwrap_or(("", rest))
    };
    let (cipher, hash) = rest.rsplit_once('_').unwrap_or((rest, ""));
    (kx.into(), cipher.into(), hash.into())
}

fn login_name(cert: &X509Certificate<'_>, login_from: LoginFrom) -> Option<String> {
    match login_from {
        LoginFrom::CommonName => cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_owned),
        LoginFrom::DistinguishedName => Some(distinguished_name(cert.subject())),
        LoginFrom::SanDns | LoginFrom::SanEmail | LoginFrom::SanUri => {
            let san = cert.subject_alternative_name().ok().flatten()?;
            san.value
                .general_names
                .iter()
                .find_map(|name| match (login_from, name) {
                    (LoginFrom::SanDns, GeneralName::DNSName(s))
                    | (LoginFrom::SanEmail, GeneralName::RFC822Name(s))
                    | (LoginFrom::SanUri, GeneralName::URI(s)) => Some(s.to_string()),
                    _ => None,
                })
        }
    }
}

/// `2026-12-03T21:36:07Z`, as RabbitMQ writes certificate validity.
fn iso8601(time: &x509_parser::time::ASN1Time) -> String {
    let t = time.to_datetime();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// RFC 4514: the last RDN first, `,` between RDNs, `+` inside a multi-valued one, special
/// characters escaped; what RabbitMQ's `rabbit_ssl` writes for subjects and issuers.
fn distinguished_name(name: &X509Name<'_>) -> String {
    let registry = x509_parser::objects::oid_registry();
    let mut rdns = Vec::new();
    for rdn in name.iter() {
        let parts: Vec<String> = rdn
            .iter()
            .map(|attr| {
                let key = x509_parser::objects::oid2abbrev(attr.attr_type(), registry)
                    .map(str::to_owned)
                    .unwrap_or_else(|_| attr.attr_type().to_id_string());
                let value = attr.as_str().map(escape_dn_value).unwrap_or_default();
                format!("{key}={value}")
            })
            .collect();
        rdns.push(parts.join("+"));
    }
    rdns.reverse();
    rdns.join(",")
}

fn escape_dn_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for (i, c) in value.chars().enumerate() {
        let leading = i == 0 && (c == ' ' || c == '#');
        let trailing = i + 1 == value.chars().count() && c == ' ';
        if matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=') || leading || trailing {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl fmt::Display for TlsSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.details.protocol, self.details.cipher)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suites_split_as_erlang_names_them() {
        assert_eq!(
            split_suite("TLS13_AES_256_GCM_SHA384"),
            ("any".into(), "aes_256_gcm".into(), "sha384".into())
        );
        assert_eq!(
            split_suite("TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"),
            (
                "ecdhe_rsa".into(),
                "chacha20_poly1305".into(),
                "sha256".into()
            )
        );
    }

    #[test]
    fn dn_values_are_escaped() {
        assert_eq!(escape_dn_value("a,b"), "a\\,b");
        assert_eq!(escape_dn_value(" x "), "\\ x\\ ");
        assert_eq!(escape_dn_value("plain"), "plain");
    }
}
