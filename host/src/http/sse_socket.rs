//! `GET /stream` served on the connection's own socket instead of through hyper.
//!
//! An SSE client holds its connection for hours. Through hyper each one keeps
//! an 8 KB read buffer and an 8 KB header buffer (about 8 KB resident per
//! client), and every event is a chunk framed and flushed by the HTTP
//! dispatcher. Here the request head is read once into a small buffer that is
//! dropped, the response is close-delimited (`Connection: close`, no length:
//! RFC 9112 §6.3), and each event is one write of the bytes the hub encoded
//! once for every subscriber. The rules are the route's own: the query is
//! checked by [`stream::subscription`], the hub subscribes and cuts stuck
//! clients, a client that goes away is noticed at once (its socket reads EOF).
//! Once the head is out, the socket is shared with the hub (the mailbox's
//! outlet): the publisher writes an event itself when the socket takes it at
//! once, and this task writes the rest, both through `&TcpStream`.
//!
//! Only a request whose first bytes are `GET /stream` comes here
//! ([`is_stream_request`]); everything else, `HEAD /stream` included, goes to
//! the router, whose `/stream` route answers the same way through hyper.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;

use super::AppState;
use super::query::BadRequest;
use super::stream;

/// The longest request head accepted (hyper's default limit is larger; a
/// stream request is a line of query and a few headers).
pub const MAX_HEAD: usize = 8 * 1024;

/// How long a client may take to send its request head.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// Headers parsed at most (more is 431).
const MAX_HEADERS: usize = 48;

/// The bytes a `GET /stream` request starts with, as peeked from a new connection.
pub fn is_stream_request(peeked: &[u8]) -> bool {
    peeked.starts_with(b"GET /stream?") || peeked.starts_with(b"GET /stream ")
}

/// Serve one `GET /stream` connection to its end.
pub async fn serve(mut socket: TcpStream, state: Arc<AppState>) {
    let (query, origin) = match tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut socket)).await {
        Ok(Ok(head)) => head,
        Ok(Err(refused)) => return respond(&mut socket, refused, &[]).await,
        Err(_) => return, // no request within the time: just close
    };
    // Another origin allowed by ALLOWED_ORIGINS is answered as such.
    let cors = state.cors.headers(origin.as_deref());
    let keys = match stream::subscription(query.as_deref(), &state) {
        Ok(keys) => keys,
        Err(refused) => return respond(&mut socket, refused, &cors).await,
    };
    let cut = Arc::new(Notify::new());
    let mut subscription = match state.hub.subscribe(keys, Some(cut.clone())) {
        Ok(s) => s,
        Err(e) => return respond(&mut socket, stream::refused(e), &cors).await,
    };
    // The head and the first event (the snapshot; never waited for) in one write.
    let Some(first) = subscription.next().await else {
        return;
    };
    let mut out = Vec::with_capacity(HEAD.len() + first.len() + 96);
    out.extend_from_slice(&HEAD[..HEAD.len() - 2]);
    for (name, value) in &cors {
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&first);
    let socket = Arc::new(socket);
    if !send(&socket, &out, &cut).await {
        return;
    }
    drop(out);
    // From now on the hub may write events to the socket itself.
    subscription.set_outlet(socket.clone());
    let mut probe = [0u8; 64];
    loop {
        tokio::select! {
            next = subscription.next() => match next {
                Some(bytes) => {
                    let sent = send(&socket, &bytes, &cut).await;
                    subscription.written();
                    if !sent {
                        return;
                    }
                }
                None => return, // the hub closed (shutdown)
            },
            // The client sends nothing more: EOF or an error means it is gone.
            ready = socket.readable() => match ready.and_then(|()| socket.try_read(&mut probe)) {
                Ok(0) => return,
                Ok(_) => {} // pipelined bytes: this connection only streams, then closes
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => return,
            },
            _ = cut.notified() => return, // stuck past the hub's limit
        }
    }
}

/// The response head of a stream: the route's [`stream::HEADERS`], and
/// close-delimited (no length, no chunking).
static HEAD: std::sync::LazyLock<Vec<u8>> = std::sync::LazyLock::new(|| {
    let mut head = b"HTTP/1.1 200 OK\r\n".to_vec();
    for (name, value) in stream::HEADERS {
        head.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    head.extend_from_slice(b"connection: close\r\n\r\n");
    head
});

/// What the bytes of a request head so far say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Head {
    /// A whole head: the raw query string of its target, if it has one, and
    /// its `Origin` header, if it has one.
    Complete {
        query: Option<String>,
        origin: Option<String>,
    },
    /// More bytes are needed.
    Partial,
}

/// Parse the bytes of a request head read so far (a client's bytes: any
/// input gets an answer, never a panic).
pub fn parse_head(buf: &[u8]) -> Result<Head, BadRequest> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(buf) {
        Ok(httparse::Status::Complete(_)) => {
            let target = request.path.unwrap_or("/stream");
            let origin = request
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("origin"))
                .and_then(|h| std::str::from_utf8(h.value).ok())
                .map(str::to_string);
            Ok(Head::Complete {
                query: target.split_once('?').map(|(_, q)| q.to_string()),
                origin,
            })
        }
        Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => Ok(Head::Partial),
        Ok(httparse::Status::Partial) | Err(httparse::Error::TooManyHeaders) => Err(BadRequest::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "request head too large",
        )),
        Err(_) => Err(BadRequest::new(StatusCode::BAD_REQUEST, "malformed request")),
    }
}

/// Read the request head; returns the raw query string of the target and the
/// `Origin` header.
async fn read_head(socket: &mut TcpStream) -> Result<(Option<String>, Option<String>), BadRequest> {
    let mut buf = Vec::with_capacity(1024);
    loop {
        let mut chunk = [0u8; 1024];
        let n = socket
            .read(&mut chunk)
            .await
            .map_err(|_| BadRequest::new(StatusCode::BAD_REQUEST, "unreadable request"))?;
        if n == 0 {
            return Err(BadRequest::new(StatusCode::BAD_REQUEST, "incomplete request"));
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Head::Complete { query, origin } = parse_head(&buf)? {
            return Ok((query, origin));
        }
    }
}

/// Answer a refused request with its status and short plain message (and
/// the `cors` headers, so an allowed origin can read why), then close.
async fn respond(socket: &mut TcpStream, refused: BadRequest, cors: &[(&str, String)]) {
    let body = format!("{}\n", refused.message);
    let mut head = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n",
        refused.status.as_u16(),
        refused.status.canonical_reason().unwrap_or(""),
        body.len()
    );
    for (name, value) in cors {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let _ = socket.write_all((head + &body).as_bytes()).await;
    let _ = socket.shutdown().await;
}

/// Write `bytes`, giving up when the hub cuts the client (a full socket
/// buffer would otherwise hold the write forever). `false`: the stream is over.
///
/// Through `&TcpStream` (readiness, then a non-blocking write): the hub's
/// publisher writes to the same socket between this task's writes.
async fn send(socket: &TcpStream, bytes: &[u8], cut: &Notify) -> bool {
    let write = async {
        let mut rest = bytes;
        while !rest.is_empty() {
            socket.writable().await?;
            match socket.try_write(rest) {
                Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(n) => rest = &rest[n..],
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        Ok::<(), std::io::Error>(())
    };
    tokio::select! {
        written = write => written.is_ok(),
        _ = cut.notified() => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_get_stream_is_taken_off_hyper() {
        assert!(is_stream_request(b"GET /stream?product=BTC-USD HTTP/1.1\r\n"));
        assert!(is_stream_request(b"GET /stream HTTP/1.1\r\n"));
        assert!(!is_stream_request(b"GET /streams HTTP/1.1\r\n"));
        assert!(!is_stream_request(b"HEAD /stream HTTP/1.1\r\n"));
        assert!(!is_stream_request(b"GET / HTTP/1.1\r\n"));
        assert!(!is_stream_request(b"GET /str"));
    }
}
