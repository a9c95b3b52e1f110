//! `iocd serve`'s TLS settings and `iocd ca`: the local CA from the database, the HTTPS
//! listener's certificates (the CA's, or the operator's own) and those of intercepted hosts.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use iocd_server::Server;
use iocd_store::CertificateAuthorityStore;
use iocd_tls::{CertificateAuthority, LeafCertificates};

use crate::Switch;

#[derive(clap::Args)]
pub struct TlsArgs {
    /// Also serve over HTTPS (TLS 1.2/1.3) on this address, with a certificate from iocd's local
    /// CA (`iocd ca` prints it) covering localhost, 127.0.0.1, ::1, the --public-url host and
    /// every --tls-name.
    #[arg(long, env = "IOCD_HTTPS_LISTEN")]
    https_listen: Option<SocketAddr>,
    /// Another name (DNS name or IP address) the HTTPS certificate covers (repeatable,
    /// comma-separated in the environment).
    #[arg(long = "tls-name", env = "IOCD_TLS_NAMES", value_delimiter = ',')]
    tls_names: Vec<String>,
    /// Serve HTTPS with this certificate chain (PEM) instead of one from the local CA.
    #[arg(long, env = "IOCD_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, env = "IOCD_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Answer HTTP CONNECT for Microsoft's login and Defender API hosts on the plain listener,
    /// so clients need only HTTPS_PROXY and the CA; CONNECT to any other host gets 403.
    #[arg(long, env = "IOCD_INTERCEPT", value_enum, default_value_t = Switch::On)]
    intercept: Switch,
}

/// The certificates a server presents.
pub struct TlsSetup {
    leaves: Arc<LeafCertificates>,
    /// The operator's own certificate for the HTTPS listener, if given.
    own_certificate: Option<Arc<rustls::sign::CertifiedKey>>,
}

impl TlsSetup {
    /// Loads (on first start creates) the database's CA and checks the operator's certificate.
    pub async fn open(
        store: &dyn CertificateAuthorityStore,
        args: &TlsArgs,
        public_url: Option<&str>,
    ) -> anyhow::Result<TlsSetup> {
        let authority = CertificateAuthority::open(store)
            .await
            .context("loading the local certificate authority")?;
        let mut names = args.tls_names.clone();
        if let Some(host) = public_url.and_then(url_host) {
            names.push(host);
        }
        let leaves = LeafCertificates::new(Arc::new(authority), &names)
            .context("minting the HTTPS listener's certificate (check --tls-name)")?;
        let own_certificate = match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => Some(iocd_tls::load_certificate(cert, key)?),
            _ => None,
        };
        Ok(TlsSetup {
            leaves: Arc::new(leaves),
            own_certificate,
        })
    }

    /// `server` with the HTTPS listener and the interception the arguments ask for.
    pub async fn attach(&self, mut server: Server, args: &TlsArgs) -> anyhow::Result<Server> {
        if let Some(addr) = args.https_listen {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("listening for HTTPS on {addr}"))?;
            let certificates: Arc<dyn rustls::server::ResolvesServerCert> =
                match &self.own_certificate {
                    Some(own) => Arc::new(rustls::sign::SingleCertAndKey::from(own.clone())),
                    None => self.leaves.clone(),
                };
            server = server.with_https(listener, iocd_tls::server_config(certificates));
            tracing::info!(
                addr = %server.https_local_addr().expect("bound"),
                names = ?self.own_certificate.is_none().then(|| self.leaves.listener_names()),
                "serving HTTPS"
            );
        }
        if args.intercept == Switch::On {
            server = server.with_interception(iocd_tls::server_config(self.leaves.clone()));
        }
        Ok(server)
    }
}

/// The host of a URL (`https://iocd.example.com:8443/x` → `iocd.example.com`).
fn url_host(url: &str) -> Option<String> {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = after_scheme.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let host = if let Some(bracketed) = authority.strip_prefix('[') {
        bracketed.split_once(']')?.0
    } else {
        authority.split(':').next()?
    };
    (!host.is_empty()).then(|| host.to_string())
}

/// `iocd ca`: prints the CA certificate, creating the CA if the database has none yet.
pub async fn print_authority(database: &str) -> anyhow::Result<()> {
    let stores = iocd_store::open_stores(database)
        .await
        .with_context(|| format!("opening the database {database}"))?;
    let authority = CertificateAuthority::open(stores.certificate_authority.as_ref()).await?;
    print!("{}", authority.certificate_pem());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::url_host;

    #[test]
    fn url_host_takes_the_host_of_any_url() {
        assert_eq!(
            url_host("https://iocd.example.com:8443/x").as_deref(),
            Some("iocd.example.com")
        );
        assert_eq!(url_host("http://[::1]:8080").as_deref(), Some("::1"));
        assert_eq!(
            url_host("https://user@h.example").as_deref(),
            Some("h.example")
        );
        assert_eq!(url_host("https://"), None);
    }
}
