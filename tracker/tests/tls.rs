//! `wss://` and `https://` served in-process with rustls, checked with a rustls client that
//! trusts a certificate generated for the test.

mod support;

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::Message;

fn connector(cert: &CertificateDer<'static>) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

#[tokio::test]
async fn serves_wss_and_https_on_one_port() {
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let dir = std::env::temp_dir().join(format!("tracker-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, generated.cert.pem()).unwrap();
    std::fs::write(&key_path, generated.signing_key.serialize_pem()).unwrap();
    let tracker = support::start(|c| {
        c.tls_cert = Some(cert_path.clone());
        c.tls_key = Some(key_path.clone());
    })
    .await;
    let addr = tracker.local_addr();
    let tls = connector(generated.cert.der());
    let name = ServerName::try_from("localhost").unwrap();

    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut https = tls.connect(name.clone(), stream).await.unwrap();
    https
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    https.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");

    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let wss = tls.connect(name, stream).await.unwrap();
    let (mut socket, _) = tokio_tungstenite::client_async("wss://localhost/", wss)
        .await
        .unwrap();
    let announce = support::announce(&support::id(b'S', 1), &support::id(b'P', 1), 0);
    socket
        .send(Message::text(announce.to_string()))
        .await
        .unwrap();
    let Some(Ok(Message::Text(reply))) = socket.next().await else {
        panic!("no reply")
    };
    let reply: serde_json::Value = serde_json::from_str(&reply).unwrap();
    assert_eq!(reply["action"], json!("announce"));
    assert_eq!(reply["incomplete"], json!(1));

    // A plain-text client cannot talk to the TLS port.
    let plain_answered = tokio::time::timeout(std::time::Duration::from_secs(3), async {
        let mut plain = tokio::net::TcpStream::connect(addr).await.unwrap();
        plain
            .write_all(b"GET /healthz HTTP/1.1\r\n\r\n")
            .await
            .unwrap();
        let mut buf = Vec::new();
        let _ = plain.read_to_end(&mut buf).await;
        String::from_utf8_lossy(&buf).contains("200 OK")
    })
    .await
    .unwrap_or(false);
    assert!(!plain_answered);
    tracker.shutdown().await;
}
