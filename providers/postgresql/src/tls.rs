//! TLS to PostgreSQL: which server certificates each `sslMode` accepts.
//!
//! | sslMode       | encrypted            | certificate checked              |
//! |---------------|----------------------|----------------------------------|
//! | `disable`     | never                | -                                |
//! | `prefer`      | when the server can  | no                               |
//! | `require`     | always               | no                               |
//! | `verify-ca`   | always               | chain to the CA in `ca.crt`      |
//! | `verify-full` | always               | chain, and host name in its SAN  |
//!
//! Everything runs on rustls with the ring provider (the stack kube already uses);
//! `tokio-postgres-rustls` wraps the stream and computes the `tls-server-end-point`
//! channel binding that [`crate::session`] requires whenever TLS is on.

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tessera_engine::managed::ProviderError;
use tokio_postgres::config;
use tokio_postgres::error::SqlState;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::api::SslMode;
use crate::error::error_text;

/// Why TLS could not be set up from the ProviderConfig and its Secret.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum TlsSetupError {
    /// `verify-ca` or `verify-full` without a CA bundle.
    MissingCa,
    /// The CA bundle holds no usable PEM certificate.
    InvalidCa(String),
    /// rustls refused the configuration (an internal error, not the user's).
    Rustls(String),
}

/// How the server's certificate is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verification {
    /// Any certificate (libpq's `prefer` and `require`).
    None,
    /// The chain must lead to the CA; the host name is not checked (`verify-ca`).
    Chain,
    /// The chain and the host name (`verify-full`).
    Full,
}

/// A TLS connector for `verification`; `ca_pem` is the PEM bundle of trusted CAs, needed
/// unless `verification` is [`Verification::None`].
pub(crate) fn connector(
    verification: Verification,
    ca_pem: Option<&[u8]>,
) -> Result<MakeRustlsConnect, TlsSetupError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsSetupError::Rustls(e.to_string()))?;
    let verifier: Arc<dyn ServerCertVerifier> = match verification {
        Verification::None => Arc::new(AnyCertificate { provider }),
        Verification::Chain | Verification::Full => {
            let roots = roots(ca_pem.ok_or(TlsSetupError::MissingCa)?)?;
            let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| TlsSetupError::Rustls(e.to_string()))?;
            if verification == Verification::Full {
                webpki
            } else {
                Arc::new(ChainOnly { webpki })
            }
        }
    };
    let config = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// The trust anchors in a PEM bundle; text around the certificates is ignored, as
/// OpenSSL does.
fn roots(pem: &[u8]) -> Result<RootCertStore, TlsSetupError> {
    let mut roots = RootCertStore::empty();
    let mut found = 0;
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| TlsSetupError::InvalidCa(e.to_string()))?;
        roots
            .add(cert)
            .map_err(|e| TlsSetupError::InvalidCa(e.to_string()))?;
        found += 1;
    }
    if found == 0 {
        return Err(TlsSetupError::InvalidCa(
            "it holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into(),
        ));
    }
    Ok(roots)
}

/// `verify-ca`: the full webpki check, except that a certificate issued for another name
/// is accepted. webpki checks the chain (issuer, validity, key usage) before the name, so
/// a name error means everything else held.
#[derive(Debug)]
struct ChainOnly {
    webpki: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// Accepts any certificate (libpq's `prefer` and `require`), but still checks handshake
/// signatures, so the server must hold the key of the certificate it presents; channel
/// binding then ties the login to that certificate.
#[derive(Debug)]
struct AnyCertificate {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// What `mode` asks of the server's certificate; `None` when TLS is not used at all.
pub(crate) fn verification(mode: SslMode) -> Option<Verification> {
    match mode {
        SslMode::Disable => None,
        SslMode::Prefer | SslMode::Require => Some(Verification::None),
        SslMode::VerifyCa => Some(Verification::Chain),
        SslMode::VerifyFull => Some(Verification::Full),
    }
}

/// tokio-postgres' view of `mode`: whether TLS is attempted and whether it is required.
pub(crate) fn pg_ssl_mode(mode: SslMode) -> config::SslMode {
    match mode {
        SslMode::Disable => config::SslMode::Disable,
        SslMode::Prefer => config::SslMode::Prefer,
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => config::SslMode::Require,
    }
}

/// Whether the login must be bound to the TLS session. Where TLS is certain, it must:
/// tokio-postgres then accepts only SCRAM-SHA-256-PLUS and refuses, before sending
/// anything, a server that asks for a cleartext or MD5 password, lets the user in without
/// one, or offers SCRAM without channel binding. A man in the middle that terminates TLS
/// with its own certificate cannot relay such a login, since the binding covers the
/// certificate the client saw. `prefer` may end up in the clear, where no binding exists.
pub(crate) fn channel_binding(mode: SslMode) -> config::ChannelBinding {
    match mode {
        SslMode::Disable => config::ChannelBinding::Disable,
        SslMode::Prefer => config::ChannelBinding::Prefer,
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
            config::ChannelBinding::Require
        }
    }
}

/// The message for a TLS setup that failed before connecting.
pub(crate) fn setup_error(
    provider_config: &str,
    mode: SslMode,
    err: TlsSetupError,
) -> ProviderError {
    match err {
        TlsSetupError::MissingCa => ProviderError::Config(format!(
            "ProviderConfig {provider_config:?}: sslMode {} needs the certificate of the CA \
             that issued the server's certificate, in PEM, in key \"ca.crt\" of its credentials \
             Secret",
            mode.as_str()
        )),
        TlsSetupError::InvalidCa(why) => ProviderError::Config(format!(
            "ProviderConfig {provider_config:?}: key \"ca.crt\" of its credentials Secret is not \
             a PEM CA bundle: {why}"
        )),
        TlsSetupError::Rustls(why) => {
            ProviderError::Transient(format!("cannot set up TLS for PostgreSQL: {why}"))
        }
    }
}

/// Where a connection failed for a reason of TLS or of the login method that only a
/// change of the ProviderConfig, its Secret or the server fixes: the message for it.
pub(crate) fn refusal(
    provider_config: &str,
    mode: SslMode,
    server: &str,
    username: &str,
    err: &tokio_postgres::Error,
) -> Option<ProviderError> {
    let pc = provider_config;
    let text = error_text(err);
    if let Some(cert) = certificate_error(err) {
        let advice = match cert {
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                "set key \"endpoint\" of the credentials Secret to a name the certificate is \
                 issued for, or reissue the certificate with that name"
            }
            CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                "put the CA that issued the server's certificate in key \"ca.crt\" of the \
                 credentials Secret"
            }
            _ => "renew or reissue the server's certificate",
        };
        return Some(ProviderError::Config(format!(
            "ProviderConfig {pc:?}: sslMode {}: the certificate of PostgreSQL at {server} was \
             refused ({cert}); {advice}",
            mode.as_str()
        )));
    }
    if text.contains("server does not support TLS") {
        return Some(ProviderError::Config(format!(
            "ProviderConfig {pc:?}: sslMode is {}, but PostgreSQL at {server} does not offer \
             TLS; turn on ssl in the server, or lower sslMode",
            mode.as_str()
        )));
    }
    if let Some(refused) = crate::guard::refused(err) {
        return Some(ProviderError::Config(format!(
            "ProviderConfig {pc:?}: PostgreSQL at {server} asked for the password of user \
             {username} {}, so the login was refused and no password was sent; use \
             scram-sha-256 for this user in pg_hba.conf and store its password as a SCRAM \
             verifier",
            refused.how()
        )));
    }
    if text.contains("server did not use channel binding") {
        return Some(ProviderError::Config(format!(
            "ProviderConfig {pc:?}: PostgreSQL at {server} did not offer SCRAM-SHA-256 with \
             channel binding for user {username}, so the login was refused and no password was \
             sent: the server asked for a cleartext or MD5 password, admitted the user without \
             one, or offered SCRAM without channel binding; use scram-sha-256 for this user in \
             pg_hba.conf and store its password as a SCRAM verifier"
        )));
    }
    if let Some(db) = err.as_db_error()
        && mode == SslMode::Disable
        && *db.code() == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
        && db.message().contains("no encryption")
    {
        return Some(ProviderError::Config(format!(
            "ProviderConfig {pc:?}: PostgreSQL at {server} requires TLS for user {username} \
             ({}); set spec.sslMode to verify-full and the server's CA in key \"ca.crt\" of \
             the credentials Secret",
            db.message()
        )));
    }
    None
}

/// The rustls certificate error inside a failed connection, if that is why it failed.
pub(crate) fn certificate_error(err: &tokio_postgres::Error) -> Option<CertificateError> {
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        if let Some(rustls::Error::InvalidCertificate(e)) = cause.downcast_ref::<rustls::Error>() {
            return Some(e.clone());
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>()
            && let Some(rustls::Error::InvalidCertificate(e)) =
                io.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>())
        {
            return Some(e.clone());
        }
        source = cause.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifying_modes_need_a_ca_bundle() {
        for v in [Verification::Chain, Verification::Full] {
            assert_eq!(
                connector(v, None).err(),
                Some(TlsSetupError::MissingCa),
                "{v:?}"
            );
        }
        assert!(
            connector(Verification::None, None).is_ok(),
            "require needs no CA"
        );
    }

    #[test]
    fn a_ca_bundle_without_certificates_is_refused_with_what_was_expected() {
        let err = connector(Verification::Full, Some(b"not a certificate\n")).err();
        assert_eq!(
            err,
            Some(TlsSetupError::InvalidCa(
                "it holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into()
            ))
        );
    }

    #[test]
    fn a_ca_bundle_with_a_broken_certificate_is_refused() {
        let pem = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(matches!(
            connector(Verification::Chain, Some(pem)).err(),
            Some(TlsSetupError::InvalidCa(_))
        ));
    }
}
