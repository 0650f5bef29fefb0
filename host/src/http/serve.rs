//! The accept loop: hyper HTTP/1.1 connections serving the axum router, each
//! with a handle that cuts it (the hub uses it on stuck SSE clients, whose
//! connections would otherwise stay open while their socket buffer is full).
//! A connection whose first bytes are `GET /stream` is served by
//! [`super::sse_socket`] on the socket itself.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tower_service::Service;

use super::{AppState, sse_socket};

/// Kernel send buffer per connection. Linux autotunes it up to 4 MB; for
/// thousands of SSE clients that is gigabytes held for slow readers. 64 KB
/// holds a dozen full events; past that the hub conflates for the client.
pub const SEND_BUFFER: usize = 64 * 1024;

/// A request extension: notify it to cut the request's connection.
#[derive(Clone)]
pub struct CutConnection(pub Arc<Notify>);

/// Serve `router` on `listener` until `shutdown` resolves; then let each
/// connection finish its request (at most `drain`) and return.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) -> std::io::Result<()> {
    let router = super::router(state.clone());
    let (closing, closed) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    let _ = socket2::SockRef::from(&stream).set_send_buffer_size(SEND_BUFFER);
                    connections.spawn(connection(stream, router.clone(), state.clone(), closed.clone()));
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off briefly.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    let _ = closing.send(true);
    if tokio::time::timeout(drain, async { while connections.join_next().await.is_some() {} })
        .await
        .is_err()
    {
        tracing::warn!(
            open = connections.len(),
            "connections still open after the drain; closing them"
        );
        connections.abort_all();
    }
    Ok(())
}

async fn connection(
    stream: tokio::net::TcpStream,
    router: Router,
    state: Arc<AppState>,
    mut closing: watch::Receiver<bool>,
) {
    // A stream request is served on the socket itself (see `sse_socket`).
    let mut first = [0u8; 12];
    match tokio::time::timeout(sse_socket::HEAD_TIMEOUT, stream.peek(&mut first)).await {
        Ok(Ok(n)) if sse_socket::is_stream_request(&first[..n]) => return sse_socket::serve(stream, state).await,
        Ok(Ok(_)) => {}
        Ok(Err(_)) | Err(_) => return, // nothing sent in time, or the socket failed
    }
    let cut = Arc::new(Notify::new());
    let handle = CutConnection(cut.clone());
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(handle.clone());
        router.clone().call(req)
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10))
        .serve_connection(TokioIo::new(stream), service);
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = cut.notified() => {} // dropping the connection closes the socket
        _ = async { closing.wait_for(|c| *c).await.map(|_| ()) } => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}
