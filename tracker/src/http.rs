//! The HTTP side of the shared port: reading a request head, the plain endpoints, and the
//! WebSocket upgrade response.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest request head accepted.
const MAX_HEAD: usize = 8 * 1024;
/// Most headers accepted in a request.
const MAX_HEADERS: usize = 32;

/// A request head and whatever bytes followed it.
pub struct RequestHead {
    buffer: Vec<u8>,
    head_len: usize,
}

/// Why a request head could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HeadError {
    /// The connection failed or closed early.
    #[error("connection error: {0}")]
    Io(#[from] std::io::Error),
    /// Not HTTP, or a head larger than allowed.
    #[error("bad request: {0}")]
    Bad(&'static str),
}

impl RequestHead {
    /// Reads until the end of the head (`\r\n\r\n`), at most 8 KiB.
    pub async fn read<S: AsyncRead + Unpin>(stream: &mut S) -> Result<Self, HeadError> {
        let mut buffer = Vec::with_capacity(1024);
        loop {
            if let Some(end) = find_head_end(&buffer) {
                return Ok(Self {
                    buffer,
                    head_len: end,
                });
            }
            if buffer.len() >= MAX_HEAD {
                return Err(HeadError::Bad("request head too large"));
            }
            let mut chunk = [0u8; 1024];
            let read = stream.read(&mut chunk).await?;
            if read == 0 {
                return Err(HeadError::Bad(
                    "connection closed before the request head ended",
                ));
            }
            buffer.extend_from_slice(&chunk[..read]);
        }
    }

    /// Parses the head; `headers` receives the header fields.
    pub fn parse<'h, 'b: 'h>(
        &'b self,
        headers: &'h mut [httparse::Header<'b>; MAX_HEADERS],
    ) -> Result<httparse::Request<'h, 'b>, HeadError> {
        let mut request = httparse::Request::new(headers);
        match request.parse(&self.buffer[..self.head_len]) {
            Ok(httparse::Status::Complete(_)) => Ok(request),
            _ => Err(HeadError::Bad("malformed HTTP request")),
        }
    }

    /// The bytes received after the head (the start of the WebSocket stream).
    pub fn into_rest(mut self) -> Vec<u8> {
        self.buffer.drain(..self.head_len);
        self.buffer.shrink_to_fit();
        self.buffer
    }

    /// A fresh header array for [`RequestHead::parse`].
    pub fn header_slots<'b>() -> [httparse::Header<'b>; MAX_HEADERS] {
        [httparse::EMPTY_HEADER; MAX_HEADERS]
    }
}

fn find_head_end(buffer: &[u8]) -> Option<usize> {
    buffer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4)
}

/// The value of a header, case-insensitively.
pub fn header<'b>(headers: &[httparse::Header<'b>], name: &str) -> Option<&'b str> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .and_then(|h| std::str::from_utf8(h.value).ok())
}

/// Whether the request asks for a WebSocket upgrade.
pub fn is_websocket_upgrade(headers: &[httparse::Header<'_>]) -> bool {
    header(headers, "upgrade").is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// Writes a complete response and closes the write side.
pub async fn respond<S: AsyncWrite + Unpin>(
    stream: &mut S,
    status: &str,
    content_type: &str,
    body: &str,
) -> std::io::Result<()> {
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

/// Completes the WebSocket handshake for the client's `Sec-WebSocket-Key`.
pub async fn accept_websocket<S: AsyncWrite + Unpin>(
    stream: &mut S,
    key: &str,
) -> std::io::Result<()> {
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\
         sec-websocket-accept: {accept}\r\n\r\n"
    );
    stream.write_all(response.as_bytes()).await
}
