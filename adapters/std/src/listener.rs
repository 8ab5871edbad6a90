//! The gossip listener: one frame per connection, read to end of stream within a deadline and
//! a size limit, handed to the engine. A fixed pool of workers reads; accepted connections
//! wait in a bounded backlog and are shed (closed, counted) when it is full.

use crate::state::NodeState;
use std::io::{ErrorKind, Read};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tally_core::replica::{Ingress, MAX_HEADER};

pub(crate) fn spawn(
    listener: TcpListener,
    state: Arc<NodeState>,
    workers: usize,
    backlog: usize,
    read_timeout: Duration,
) -> std::io::Result<Vec<JoinHandle<()>>> {
    let (tx, rx) = sync_channel::<TcpStream>(backlog.max(1));
    let rx = Arc::new(Mutex::new(rx));
    let mut handles = Vec::new();
    for i in 0..workers.max(1) {
        let (rx, state) = (Arc::clone(&rx), Arc::clone(&state));
        handles.push(
            std::thread::Builder::new()
                .name(format!("tally-read-{i}"))
                .spawn(move || worker(&rx, &state, read_timeout))?,
        );
    }
    let s = Arc::clone(&state);
    handles.push(
        std::thread::Builder::new()
            .name("tally-accept".into())
            .spawn(move || accept_loop(&listener, &tx, &s))?,
    );
    Ok(handles)
}

fn accept_loop(listener: &TcpListener, tx: &SyncSender<TcpStream>, state: &NodeState) {
    for stream in listener.incoming() {
        if state.is_shutting_down() {
            break;
        }
        let Ok(stream) = stream else { continue };
        if state.is_isolated() {
            continue;
        }
        match tx.try_send(stream) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => state.replica().record_shed(),
            Err(TrySendError::Disconnected(_)) => break,
        }
    }
}

fn worker(rx: &Mutex<Receiver<TcpStream>>, state: &NodeState, read_timeout: Duration) {
    loop {
        let next = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
        let Ok(stream) = next else { break };
        if state.is_shutting_down() {
            break;
        }
        let limit = state.replica().config().frame_limits.max_frame + MAX_HEADER;
        let result = read_frame(stream, limit, read_timeout);
        let input = match &result {
            Ok(bytes) => Ingress::Payload(bytes),
            Err(ReadError::TooLarge) => Ingress::TooLarge,
            Err(ReadError::TooSlow) => Ingress::TooSlow,
            Err(ReadError::Io) => Ingress::Reset,
        };
        let now = state.now();
        if let Err(e) = state.replica().ingest(now, input) {
            tracing::debug!(reason = e.name(), "frame rejected");
        }
        state.kick();
    }
}

enum ReadError {
    TooLarge,
    TooSlow,
    Io,
}

/// Reads to end of stream, at most `limit` bytes, all within `timeout` from now.
fn read_frame(
    mut stream: TcpStream,
    limit: usize,
    timeout: Duration,
) -> Result<Vec<u8>, ReadError> {
    let deadline = Instant::now() + timeout;
    let mut buf = Vec::with_capacity(4096.min(limit));
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ReadError::TooSlow);
        }
        stream
            .set_read_timeout(Some(left))
            .map_err(|_| ReadError::Io)?;
        match stream.read(&mut chunk) {
            Ok(0) => return Ok(buf),
            Ok(n) => {
                if buf.len() + n > limit {
                    return Err(ReadError::TooLarge);
                }
                buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err(ReadError::TooSlow)
            }
            Err(_) => return Err(ReadError::Io),
        }
    }
}
