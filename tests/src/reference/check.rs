//! What reached the stand-in, and whether it is a frame the reference encoder could have written.

use super::*;

/// One incoming connection, as the stand-in saw it.
#[derive(Clone, Debug)]
pub struct Received {
    /// The header address (empty when the header did not parse).
    pub from: String,
    /// The bytes of the single read (header included).
    pub raw: Vec<u8>,
    /// Whether the header and frame decoded.
    pub decoded: bool,
    /// The decoded message.
    pub message: Option<Message>,
    /// Why it did not decode.
    pub error: Option<String>,
    /// Bytes that arrived on the connection after the first read (read on until end of stream
    /// or a short timeout, for checking only; behaviour used the first read alone).
    pub extra_bytes_after_first_read: usize,
}

impl Received {
    /// The frame part of the read (after the header), if the header parsed.
    pub fn frame(&self) -> Option<&[u8]> {
        split_header(&self.raw).ok().map(|(_, f)| f)
    }

    /// See [`is_reference_frame`].
    pub fn is_reference_frame(&self) -> Result<(), String> {
        is_reference_frame(self)
    }
}

/// Whether `r` is exactly what the reference would have sent: it fit in one read of at most
/// 16 KiB with nothing after it, it decoded, and re-encoding the decoded message with the
/// reference rules gives exactly the received msgpack (decompressed, for zstd frames).
pub fn is_reference_frame(r: &Received) -> Result<(), String> {
    let total = r.raw.len().saturating_add(r.extra_bytes_after_first_read);
    if r.extra_bytes_after_first_read != 0 {
        return Err(format!(
            "{} bytes followed the first read of {} (more than one buffer/frame, or over the \
             16 KiB read)",
            r.extra_bytes_after_first_read,
            r.raw.len()
        ));
    }
    if total > READ_LIMIT {
        return Err(format!("{total} bytes exceed the 16 KiB read"));
    }
    if !r.decoded {
        return Err(format!(
            "did not decode: {}",
            r.error.as_deref().unwrap_or("unknown error")
        ));
    }
    let m = r.message.as_ref().ok_or("no message recorded")?;
    let (_, frame) = split_header(&r.raw)?;
    let body = frame_body(frame)?;
    let expected = encode_message(m);
    if body != expected {
        let at = body
            .iter()
            .zip(&expected)
            .position(|(a, b)| a != b)
            .unwrap_or(body.len().min(expected.len()));
        return Err(format!(
            "msgpack differs from the reference encoding at byte {at}: got {} ({} bytes), \
             reference {} ({} bytes)",
            to_hex(&body),
            body.len(),
            to_hex(&expected),
            expected.len()
        ));
    }
    Ok(())
}

/// Lower-case hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
