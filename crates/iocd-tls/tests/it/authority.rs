//! The local CA over a real store (each backend): created once even when openers race, and the leaves it
//! mints verify (with rustls's own WebPKI verifier) against it and only against it.

use std::sync::Arc;

use iocd_store::CertificateAuthorityStore;
use iocd_testkit::ScratchDatabase;
use iocd_tls::{CertificateAuthority, LeafCertificates};
use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;

/// The stores of a scratch database on the running test's backend.
async fn scratch_store() -> (Arc<dyn CertificateAuthorityStore>, ScratchDatabase) {
    let database = ScratchDatabase::for_current_backend().await;
    let stores = iocd_store::open_stores(&database.url).await.unwrap();
    (stores.certificate_authority, database)
}

fn verifier_trusting(ca_pem: &str) -> Arc<WebPkiServerVerifier> {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
        .unwrap();
    WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::new(rustls::crypto::ring::default_provider()),
    )
    .build()
    .unwrap()
}

fn verifies(verifier: &WebPkiServerVerifier, leaf: &CertificateDer<'_>, name: &str) -> bool {
    verifier
        .verify_server_cert(
            leaf,
            &[],
            &ServerName::try_from(name.to_string()).unwrap(),
            &[],
            UnixTime::now(),
        )
        .is_ok()
}

async fn racing_openers_all_get_the_ca_stored_first() {
    let (store, _dir) = scratch_store().await;
    let openers = (0..8).map(|_| {
        let store = store.clone();
        tokio::spawn(async move {
            CertificateAuthority::open(store.as_ref())
                .await
                .unwrap()
                .certificate_pem()
                .to_string()
        })
    });
    let pems: Vec<String> = futures_join(openers).await;
    assert!(pems.iter().all(|pem| *pem == pems[0]));
    let stored = store.certificate_authority().await.unwrap().unwrap();
    assert_eq!(stored.certificate_pem, pems[0]);
}

async fn futures_join(
    handles: impl Iterator<Item = tokio::task::JoinHandle<String>>,
) -> Vec<String> {
    let mut out = Vec::new();
    for handle in handles.collect::<Vec<_>>() {
        out.push(handle.await.unwrap());
    }
    out
}

async fn leaves_verify_for_their_names_under_this_ca_only() {
    let (store, _dir) = scratch_store().await;
    let authority = Arc::new(CertificateAuthority::open(store.as_ref()).await.unwrap());
    let verifier = verifier_trusting(authority.certificate_pem());
    let other = CertificateAuthority::generate().unwrap();
    let other_verifier = verifier_trusting(&other.certificate_pem);

    let leaves = LeafCertificates::new(authority, &["iocd.example.test".to_string()]).unwrap();
    let listener = leaves.listener_certificate().unwrap();
    let listener_leaf = &listener.cert[0];
    for name in ["localhost", "127.0.0.1", "::1", "iocd.example.test"] {
        assert!(verifies(&verifier, listener_leaf, name), "{name}");
    }
    assert!(!verifies(
        &verifier,
        listener_leaf,
        "login.microsoftonline.com"
    ));
    assert!(!verifies(&other_verifier, listener_leaf, "localhost"));

    let login = leaves
        .host_certificate("LOGIN.microsoftonline.com")
        .unwrap();
    assert!(verifies(
        &verifier,
        &login.cert[0],
        "login.microsoftonline.com"
    ));
    assert!(!verifies(
        &verifier,
        &login.cert[0],
        "api.security.microsoft.com"
    ));
    // Cached: the same certificate the second time.
    let again = leaves
        .host_certificate("login.microsoftonline.com")
        .unwrap();
    assert_eq!(login.cert[0], again.cert[0]);
}

async fn a_reopened_ca_signs_leaves_the_first_pem_verifies() {
    // A server restarted on the same database signs with the stored CA, not a new one.
    let (store, _dir) = scratch_store().await;
    let first = CertificateAuthority::open(store.as_ref()).await.unwrap();
    let verifier = verifier_trusting(first.certificate_pem());
    drop(first);
    let reopened = Arc::new(CertificateAuthority::open(store.as_ref()).await.unwrap());
    let leaves = LeafCertificates::new(reopened, &[]).unwrap();
    let leaf = leaves
        .host_certificate("api.securitycenter.microsoft.com")
        .unwrap();
    assert!(verifies(
        &verifier,
        &leaf.cert[0],
        "api.securitycenter.microsoft.com"
    ));
}

iocd_testkit::on_every_backend!(
    racing_openers_all_get_the_ca_stored_first,
    leaves_verify_for_their_names_under_this_ca_only,
    a_reopened_ca_signs_leaves_the_first_pem_verifies,
);
