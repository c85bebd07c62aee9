//! Server-to-client WebSocket frames, encoded once and shared by every recipient.
//!
//! A server's frames are never masked (RFC 6455, section 5.1), so a frame's bytes do not depend
//! on the connection: the hub encodes an event's frame once and every connection writes the same
//! bytes, with no per-recipient framing or copying.

use bytes::{BufMut, Bytes, BytesMut};

/// FIN set, opcode 1 (text).
const TEXT: u8 = 0x81;
/// FIN set, opcode 2 (binary): only the conformance echo sends these.
#[cfg(feature = "harness")]
const BINARY: u8 = 0x82;
/// FIN set, opcode 9 (ping), no payload.
const PING: [u8; 2] = [0x89, 0x00];

/// One complete, unmasked text frame: header and JSON payload.
#[derive(Clone, PartialEq, Eq)]
pub struct Frame(Bytes);

impl Frame {
    /// Encodes `text` as a single text frame.
    pub fn text(text: &str) -> Frame {
        Frame::encode(TEXT, text.as_bytes())
    }

    /// Encodes `bytes` as a single binary frame (the conformance echo's; events are text).
    #[cfg(feature = "harness")]
    pub(crate) fn binary(bytes: &[u8]) -> Frame {
        Frame::encode(BINARY, bytes)
    }

    fn encode(opcode: u8, payload: &[u8]) -> Frame {
        let len = payload.len();
        // The longest header is 10 bytes; the frame is built once per event, not per recipient.
        let mut frame = BytesMut::with_capacity(10 + len);
        frame.put_u8(opcode);
        match len {
            0..=125 => frame.put_u8(len as u8),
            126..=0xFFFF => {
                frame.put_u8(126);
                frame.put_u16(len as u16);
            }
            _ => {
                frame.put_u8(127);
                frame.put_u64(len as u64);
            }
        }
        frame.put_slice(payload);
        Frame(frame.freeze())
    }

    /// The frame's text (its payload; empty for a binary frame that is not UTF-8).
    pub fn payload(&self) -> &str {
        let header = match self.0[1] {
            126 => 4,
            127 => 10,
            _ => 2,
        };
        std::str::from_utf8(&self.0[header..]).unwrap_or_default()
    }

    /// The frame as it goes on the wire.
    pub(crate) fn into_bytes(self) -> Bytes {
        self.0
    }
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Frame").field(&self.payload()).finish()
    }
}

/// An empty ping frame, for heartbeats.
pub(crate) fn ping() -> &'static [u8] {
    &PING
}

#[cfg(test)]
mod tests {
    use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

    use super::Frame;

    /// Every length class decodes, with tungstenite's own parser, to the text it was built from.
    #[test]
    fn frames_decode_to_their_text_at_every_length() {
        for len in [0, 1, 125, 126, 127, 0xFFFF, 0x1_0000, 70_000] {
            let text: String = "é".repeat(len / 2) + &"x".repeat(len % 2);
            let frame = Frame::text(&text);
            let bytes = frame.clone().into_bytes();
            let mut cursor = std::io::Cursor::new(&bytes[..]);
            let (header, length) = FrameHeader::parse(&mut cursor)
                .expect("a valid header")
                .expect("a complete header");
            assert!(header.is_final, "len {len}");
            assert_eq!(header.opcode, OpCode::Data(Data::Text), "len {len}");
            assert_eq!(header.mask, None, "a server frame is never masked");
            assert_eq!(length as usize, text.len(), "len {len}");
            let payload = &bytes[cursor.position() as usize..];
            assert_eq!(payload, text.as_bytes(), "len {len}");
            assert_eq!(frame.payload(), text, "len {len}");
        }
    }
}
