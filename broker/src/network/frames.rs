//! Size-prefixed request frames read off a connection. One read takes whatever the socket
//! holds, so a client's pipelined requests (a producer's five in flight, a consumer's commit
//! behind its fetch) cost one system call together instead of two each (the size, then the
//! body); every frame leaves as a `Bytes` slice of the buffer it arrived in, without a copy.
//! An idle plaintext connection holds no buffer (it waits for readability first); an idle TLS
//! connection, whose reader cannot wait without one, holds a small one.

use std::future::Future;
use std::io;

use bytes::{Buf, Bytes, BytesMut};
use strata_protocol::frame::{decode_frame_len, FRAME_PREFIX_LEN};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Bytes a read may take before the frame's size is known, and all a peer gets for a size
/// it announced until it has sent that much: a peer that announces a large frame and sends
/// nothing costs nothing.
const READ_CHUNK: usize = 64 * 1024;

/// A reading half that can wait for bytes without a buffer to put them in.
pub(super) trait ReadReady {
    /// The buffer a reader allocates before it knows the next frame's size. A transport that
    /// can wait for readiness holds none while idle and takes a whole chunk; one that cannot
    /// holds this buffer for as long as the connection idles, so it is small.
    const FIRST_READ: usize = 4096;

    /// Resolves once a read would not block (or would report an error or the end of the
    /// stream). Transports that cannot tell resolve at once, and their reader then waits in
    /// `read` with a buffer ready.
    fn ready(&self) -> impl Future<Output = io::Result<()>> + Send {
        std::future::ready(Ok(()))
    }

    /// Reads what is there without waiting (`WouldBlock` if nothing is). Transports that
    /// cannot tell say `WouldBlock`, and their reader waits in `read` as before.
    fn try_read_buf(&self, _buf: &mut BytesMut) -> io::Result<usize> {
        Err(io::ErrorKind::WouldBlock.into())
    }
}

impl ReadReady for tokio::net::tcp::OwnedReadHalf {
    const FIRST_READ: usize = READ_CHUNK;

    fn ready(&self) -> impl Future<Output = io::Result<()>> + Send {
        self.readable()
    }

    fn try_read_buf(&self, buf: &mut BytesMut) -> io::Result<usize> {
        tokio::net::tcp::OwnedReadHalf::try_read_buf(self, buf)
    }
}

/// Cuts frames out of one connection's byte stream.
pub(super) struct FrameReader<R> {
    transport: R,
    buffer: BytesMut,
    max_frame: usize,
}

impl<R: AsyncRead + ReadReady + Unpin> FrameReader<R> {
    /// `max_frame` is `socket.request.max.bytes`: a larger announced size ends the connection
    /// before any of its body is buffered.
    pub(super) fn new(transport: R, max_frame: usize) -> Self {
        FrameReader {
            transport,
            buffer: BytesMut::new(),
            max_frame,
        }
    }

    /// The next frame's body; `Ok(None)` on a clean end of stream between frames. Safe to
    /// cancel: bytes already read stay buffered for the next call.
    pub(super) async fn next_frame(&mut self) -> Result<Option<Bytes>, String> {
        loop {
            if let Some(frame) = self.take_frame()? {
                return Ok(Some(frame));
            }
            if self.buffer.is_empty() {
                // A busy connection's next request is often here already: read it into the
                // buffer we hold, once the frames cut from it are dropped and its memory can
                // be taken back in place (no new allocation for every request).
                if self.buffer.try_reclaim(R::FIRST_READ) {
                    match self.transport.try_read_buf(&mut self.buffer) {
                        Ok(0) => return self.end_of_stream(),
                        Ok(_) => continue,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(e) => return Err(format!("read failed: {e}")),
                    }
                }
                // Nothing yet: let go of the buffer (frames still in use keep it alive) so
                // that a connection waiting for its next request holds no memory.
                self.buffer = BytesMut::new();
                self.transport
                    .ready()
                    .await
                    .map_err(|e| format!("read failed: {e}"))?;
            }
            self.make_room()?;
            match self.transport.read_buf(&mut self.buffer).await {
                Ok(0) => return self.end_of_stream(),
                Ok(_) => {}
                Err(e) => return Err(format!("read failed: {e}")),
            }
        }
    }

    /// Whether a whole frame is already buffered, so the next `next_frame` needs no read.
    pub(super) fn has_buffered_frame(&self) -> bool {
        matches!(self.announced(), Ok(Some(total)) if self.buffer.len() >= total)
    }

    /// Prefix plus body of the frame at the front of the buffer, once its prefix is in.
    fn announced(&self) -> Result<Option<usize>, String> {
        let Some(prefix) = self.buffer.first_chunk::<FRAME_PREFIX_LEN>() else {
            return Ok(None);
        };
        let body = decode_frame_len(*prefix, self.max_frame).map_err(|e| e.to_string())?;
        Ok(Some(FRAME_PREFIX_LEN + body))
    }

    fn take_frame(&mut self) -> Result<Option<Bytes>, String> {
        match self.announced()? {
            Some(total) if self.buffer.len() >= total => {
                let mut frame = self.buffer.split_to(total);
                frame.advance(FRAME_PREFIX_LEN);
                Ok(Some(frame.freeze()))
            }
            _ => Ok(None),
        }
    }

    /// Makes sure the next read has room: the transport's first read while the frame's size
    /// is unknown, a chunk while its first chunk is still arriving, then the whole frame at
    /// once, so a large produce request is moved at most once (its first chunk) instead of
    /// at every doubling.
    fn make_room(&mut self) -> Result<(), String> {
        let want = match self.announced()? {
            Some(total) if total <= READ_CHUNK || self.buffer.len() >= READ_CHUNK => total,
            Some(_) => READ_CHUNK,
            None => R::FIRST_READ.max(FRAME_PREFIX_LEN),
        };
        // Every case leaves room beyond what is buffered: `want` exceeds the buffered length
        // whenever the front frame is incomplete, and an incomplete prefix is shorter.
        if self.buffer.capacity() < want {
            self.buffer.reserve(want - self.buffer.len());
        }
        Ok(())
    }

    fn end_of_stream(&self) -> Result<Option<Bytes>, String> {
        if self.buffer.is_empty() {
            return Ok(None);
        }
        Err(match self.announced()? {
            Some(total) => format!(
                "end of stream after {} of {} frame bytes",
                self.buffer.len() - FRAME_PREFIX_LEN,
                total - FRAME_PREFIX_LEN
            ),
            None => "end of stream inside a size prefix".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncWriteExt, DuplexStream};

    use super::*;

    impl ReadReady for DuplexStream {}

    fn framed(body: &[u8]) -> Vec<u8> {
        let mut out = (body.len() as i32).to_be_bytes().to_vec();
        out.extend_from_slice(body);
        out
    }

    #[tokio::test]
    async fn pipelined_frames_come_out_whole_and_in_order() {
        let (mut client, server) = tokio::io::duplex(1 << 20);
        let mut frames = FrameReader::new(server, 1 << 20);
        let mut burst = framed(b"first");
        burst.extend(framed(b"second"));
        burst.extend(framed(&[7u8; 3000]));
        client.write_all(&burst).await.unwrap();
        drop(client);
        assert_eq!(frames.next_frame().await.unwrap().unwrap(), &b"first"[..]);
        assert_eq!(frames.next_frame().await.unwrap().unwrap(), &b"second"[..]);
        assert_eq!(
            frames.next_frame().await.unwrap().unwrap(),
            &[7u8; 3000][..]
        );
        assert_eq!(frames.next_frame().await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_large_frame_arriving_in_pieces_is_reassembled() {
        let (mut client, server) = tokio::io::duplex(8 * 1024);
        let mut frames = FrameReader::new(server, 4 << 20);
        let body: Vec<u8> = (0..1_000_000u32).map(|i| i as u8).collect();
        let bytes = [framed(&body), framed(b"next")].concat();
        let writer = tokio::spawn(async move {
            for piece in bytes.chunks(1500) {
                client.write_all(piece).await.unwrap();
            }
        });
        assert_eq!(frames.next_frame().await.unwrap().unwrap(), body);
        assert_eq!(frames.next_frame().await.unwrap().unwrap(), &b"next"[..]);
        writer.await.unwrap();
        assert_eq!(frames.next_frame().await.unwrap(), None);
    }

    #[tokio::test]
    async fn an_announced_size_gets_one_chunk_until_its_bytes_arrive() {
        let (mut client, server) = tokio::io::duplex(1 << 20);
        let mut frames = FrameReader::new(server, 100 << 20);
        client
            .write_all(&(50_000_000i32).to_be_bytes())
            .await
            .unwrap();
        client.write_all(&[1u8; 10]).await.unwrap();
        drop(client);
        let err = frames.next_frame().await.unwrap_err();
        assert_eq!(err, "end of stream after 10 of 50000000 frame bytes");
        assert!(
            frames.buffer.capacity() < 2 * READ_CHUNK,
            "{}",
            frames.buffer.capacity()
        );
    }

    #[tokio::test]
    async fn an_idle_connection_holds_no_buffer_or_a_small_one() {
        use std::time::Duration;
        // Plaintext: no buffer while waiting for the next request.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let (read_half, _write_half) = server.into_split();
        let mut frames = FrameReader::new(read_half, 1 << 20);
        client.write_all(&framed(&[3u8; 10_000])).await.unwrap();
        assert_eq!(frames.next_frame().await.unwrap().unwrap().len(), 10_000);
        let idle = tokio::time::timeout(Duration::from_millis(50), frames.next_frame()).await;
        assert!(idle.is_err(), "no frame was sent");
        assert_eq!(frames.buffer.capacity(), 0);
        // The reader resumes after the cancelled wait.
        client.write_all(&framed(b"after")).await.unwrap();
        assert_eq!(frames.next_frame().await.unwrap().unwrap(), &b"after"[..]);

        // A transport that cannot wait for readiness (TLS) holds its small first read.
        let (mut client, server) = tokio::io::duplex(1 << 20);
        let mut frames = FrameReader::new(server, 1 << 20);
        client.write_all(&framed(&[3u8; 10_000])).await.unwrap();
        assert_eq!(frames.next_frame().await.unwrap().unwrap().len(), 10_000);
        let idle = tokio::time::timeout(Duration::from_millis(50), frames.next_frame()).await;
        assert!(idle.is_err(), "no frame was sent");
        assert!(
            frames.buffer.capacity() <= 4096,
            "{}",
            frames.buffer.capacity()
        );
    }

    #[tokio::test]
    async fn sizes_are_checked_before_any_body_is_read() {
        for (prefix, expected) in [
            (200i32, "at most 100 bytes"),
            (0, "positive"),
            (-1, "positive"),
        ] {
            let (mut client, server) = tokio::io::duplex(1024);
            let mut frames = FrameReader::new(server, 100);
            client.write_all(&prefix.to_be_bytes()).await.unwrap();
            let err = frames.next_frame().await.unwrap_err();
            assert!(err.contains(expected), "{prefix}: {err}");
        }
    }

    #[tokio::test]
    async fn end_of_stream_inside_a_prefix_is_an_error_and_between_frames_is_not() {
        let (mut client, server) = tokio::io::duplex(1024);
        let mut frames = FrameReader::new(server, 100);
        client.write_all(&[0, 0]).await.unwrap();
        drop(client);
        assert_eq!(
            frames.next_frame().await.unwrap_err(),
            "end of stream inside a size prefix"
        );

        let (client, server) = tokio::io::duplex(1024);
        let mut frames = FrameReader::new(server, 100);
        drop(client);
        assert_eq!(frames.next_frame().await.unwrap(), None);
    }
}
