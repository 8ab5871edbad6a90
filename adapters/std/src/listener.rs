//! The gossip listener: one frame per connection, read to end of stream within a deadline and
//! a size limit, handed to the engine. A fixed pool of workers reads; accepted connections
//! wait in a bounded backlog and are shed (closed, counted) when it is full.

use crate::shared::{bump, Shared};
use std::io::{ErrorKind, Read};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tally_core::frame::split_header;
use tally_core::WireError;

/// Largest §2 header: length byte + 255 address bytes.
const MAX_HEADER: usize = 256;

pub(crate) fn spawn(
    listener: TcpListener,
    shared: Arc<Shared>,
    workers: usize,
    backlog: usize,
    read_timeout: Duration,
) -> std::io::Result<Vec<JoinHandle<()>>> {
    let (tx, rx) = sync_channel::<TcpStream>(backlog.max(1));
    let rx = Arc::new(Mutex::new(rx));
    let mut handles = Vec::new();
    for i in 0..workers.max(1) {
        let (rx, shared) = (Arc::clone(&rx), Arc::clone(&shared));
        handles.push(
            std::thread::Builder::new()
                .name(format!("tally-read-{i}"))
                .spawn(move || worker(&rx, &shared, read_timeout))?,
        );
    }
    let s = Arc::clone(&shared);
    handles.push(
        std::thread::Builder::new()
            .name("tally-accept".into())
            .spawn(move || accept_loop(&listener, &tx, &s))?,
    );
    Ok(handles)
}

fn accept_loop(listener: &TcpListener, tx: &SyncSender<TcpStream>, shared: &Shared) {
    for stream in listener.incoming() {
        if shared.is_shutting_down() {
            break;
        }
        let Ok(stream) = stream else { continue };
        bump(&shared.counters.accepted);
        if shared.is_isolated() {
            continue;
        }
        match tx.try_send(stream) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => bump(&shared.counters.shed),
            Err(TrySendError::Disconnected(_)) => break,
        }
    }
}

fn worker(rx: &Mutex<Receiver<TcpStream>>, shared: &Shared, read_timeout: Duration) {
    loop {
        let next = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
        let Ok(stream) = next else { break };
        if shared.is_shutting_down() {
            break;
        }
        let limit = shared.engine().config().frame_limits.max_frame + MAX_HEADER;
        let result = read_frame(stream, limit, read_timeout);
        let now = shared.now();
        let mut engine = shared.engine();
        match result {
            Ok(bytes) => match split_header(&bytes) {
                Ok((from, frame)) => {
                    if let Err(e) = engine.handle(now, from, frame) {
                        tracing::debug!(from, reason = e.name(), "frame rejected");
                    }
                }
                Err(e) => engine.record_reject(e),
            },
            Err(ReadError::TooLarge) => engine.record_reject(WireError::FrameTooLarge),
            Err(ReadError::TooSlow) => engine.record_reject(WireError::TooSlow),
            Err(ReadError::Io) => {}
        }
        drop(engine);
        shared.kick();
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
