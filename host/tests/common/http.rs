//! A minimal HTTP/1.1 client over a real TCP socket, enough for the tests:
//! one request per connection, the whole response read.
#![allow(dead_code)]

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A response: status, lower-cased headers, body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// `GET path` (path includes the query string, sent as given).
pub async fn get(addr: SocketAddr, path: &str) -> Response {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("send");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.expect("read");
    parse(&raw)
}

/// `METHOD path` with extra headers and a body. The server may answer before
/// reading the whole body (413): a failed write is not an error here.
pub async fn request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.expect("send");
    let _ = s.write_all(body).await;
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw).await;
    parse(&raw)
}

fn parse(raw: &[u8]) -> Response {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").expect("a header block");
    let (status, headers) = parse_head(head);
    let chunked = is_chunked(&headers);
    let body = if chunked { dechunk(body) } else { body.to_string() };
    Response { status, headers, body }
}

/// The status code and the headers (names lowercased) of a response head.
fn parse_head(head: &str) -> (u16, Vec<(String, String)>) {
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers)
}

/// The body comes in chunked transfer encoding.
fn is_chunked(headers: &[(String, String)]) -> bool {
    headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// One SSE event as the browser would see it.
#[derive(Debug, Clone, Default)]
pub struct Event {
    pub event: String,
    pub id: String,
    /// The values of the `data: elements ` lines.
    pub elements: Vec<String>,
}

/// A streaming response read incrementally (chunked transfer decoded, or a
/// body that runs until the connection closes).
pub struct Sse {
    stream: TcpStream,
    raw: Vec<u8>,
    body: Vec<u8>,
    chunked: bool,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// Keep-alive comments seen.
    pub comments: usize,
    eof: bool,
}

/// Open `GET path` with extra headers; `recv_buffer` shrinks the socket's
/// receive buffer (a slow client).
pub async fn sse(addr: SocketAddr, path: &str, headers: &[(&str, &str)], recv_buffer: Option<u32>) -> Sse {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    if let Some(n) = recv_buffer {
        socket.set_recv_buffer_size(n).expect("SO_RCVBUF");
    }
    let mut stream = socket.connect(addr).await.expect("connect");
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).await.expect("send");
    read_head(stream).await
}

/// Open a stream whose request is sent as the given pieces, `gap` apart (a
/// client whose request head arrives in several segments).
pub async fn sse_in_pieces(addr: SocketAddr, pieces: &[&str], gap: std::time::Duration) -> Sse {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    for (i, piece) in pieces.iter().enumerate() {
        if i > 0 {
            tokio::time::sleep(gap).await;
        }
        stream.write_all(piece.as_bytes()).await.expect("send");
        stream.flush().await.expect("flush");
    }
    read_head(stream).await
}

/// Read a streaming response up to the end of its head.
async fn read_head(stream: TcpStream) -> Sse {
    let mut s = Sse {
        stream,
        raw: Vec::new(),
        body: Vec::new(),
        chunked: false,
        status: 0,
        headers: Vec::new(),
        comments: 0,
        eof: false,
    };
    loop {
        if let Some(end) = s.raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&s.raw[..end]).to_string();
            s.raw.drain(..end + 4);
            (s.status, s.headers) = parse_head(&head);
            s.chunked = is_chunked(&s.headers);
            return s;
        }
        assert!(s.read().await > 0, "closed before the headers");
    }
}

impl Sse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    async fn read(&mut self) -> usize {
        let mut buf = [0u8; 16384];
        let n = tokio::time::timeout(std::time::Duration::from_secs(20), self.stream.read(&mut buf))
            .await
            .expect("no data from the server within 20 s")
            .unwrap_or(0);
        self.raw.extend_from_slice(&buf[..n]);
        if n == 0 {
            self.eof = true;
        }
        n
    }

    /// Move complete chunks (or, unchunked, everything) from `raw` to `body`.
    fn dechunk(&mut self) {
        if !self.chunked {
            self.body.append(&mut self.raw);
            return;
        }
        loop {
            let Some(eol) = self.raw.windows(2).position(|w| w == b"\r\n") else {
                return;
            };
            let size = usize::from_str_radix(String::from_utf8_lossy(&self.raw[..eol]).trim(), 16).unwrap_or(0);
            if size == 0 {
                self.eof = true;
                return;
            }
            if self.raw.len() < eol + 2 + size + 2 {
                return;
            }
            self.body.extend_from_slice(&self.raw[eol + 2..eol + 2 + size]);
            self.raw.drain(..eol + 2 + size + 2);
        }
    }

    /// The next event (comments are counted and skipped); `None` at the end
    /// of the stream.
    pub async fn event(&mut self) -> Option<Event> {
        loop {
            self.dechunk();
            if let Some(end) = self.body.windows(2).position(|w| w == b"\n\n") {
                let block = String::from_utf8_lossy(&self.body[..end]).to_string();
                self.body.drain(..end + 2);
                let mut e = Event::default();
                let mut comment = true;
                for line in block.lines() {
                    if line.starts_with(':') {
                        continue;
                    }
                    comment = false;
                    if let Some(v) = line.strip_prefix("event: ") {
                        e.event = v.to_string();
                    } else if let Some(v) = line.strip_prefix("id: ") {
                        e.id = v.to_string();
                    } else if let Some(v) = line.strip_prefix("data: elements ") {
                        e.elements.push(v.to_string());
                    } else {
                        panic!("unexpected SSE line {line:?}");
                    }
                }
                if comment {
                    self.comments += 1;
                    continue;
                }
                return Some(e);
            }
            if self.eof || self.read().await == 0 {
                return None;
            }
        }
    }

    /// Read and discard until the connection ends (or 20 s pass: a panic).
    pub async fn until_closed(&mut self) {
        while self.read().await > 0 {}
    }
}

/// The value of attribute `name` in an element's start tag.
pub fn attr(element: &str, name: &str) -> Option<String> {
    let needle = format!(" {name}=\"");
    let start = element.find(&needle)? + needle.len();
    let len = element[start..].find('"')?;
    Some(element[start..start + len].to_string())
}

/// What an element shows of its candle: bucket start, open, high, low,
/// close, volume (empty where an attribute is missing).
pub fn shown(element: &str) -> [String; 6] {
    [
        "data-timestamp",
        "data-open",
        "data-high",
        "data-low",
        "data-close",
        "data-volume",
    ]
    .map(|a| attr(element, a).unwrap_or_default())
}
