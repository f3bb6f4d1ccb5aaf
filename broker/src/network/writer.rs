//! The writing half of a connection: replies go out in request order, written by the task
//! that reads and handles the requests (as Kafka's network thread does: a connection's next
//! request is read once its previous reply is on its way), pipelined replies gathered into
//! one vectored write. No second task per connection means no wake-up handed between
//! threads per reply. On plaintext TCP, Fetch records that lie in a segment
//! file are sent with sendfile(2), as Kafka does: the kernel hands page-cache pages to the
//! socket, so the broker never copies record bytes on the way out. TLS must encrypt in user
//! space, so there the records are written from their (zero-copy) mapping slice instead.

use std::fs::File;
use std::future::Future;
use std::io;
use std::net::SocketAddr;

use bytes::Bytes;
use tokio::io::{AsyncWrite, AsyncWriteExt, Interest, WriteHalf};
use tokio::net::tcp::OwnedWriteHalf;

use crate::handlers::{OutChunk, Reply};

/// IOV_MAX on Linux: the most buffers one writev accepts.
const MAX_IOVECS: usize = 1024;

/// At most this many finished replies wait to go out in one vectored write.
pub(super) const MAX_COALESCED_REPLIES: usize = 64;

/// Records below this size are written from their mapping with the rest of the reply in one
/// `writev`: for a consumer tailing a topic (a record or a few per Fetch) sendfile's page
/// hand-over saves nothing, and it would cost four more system calls (cork, the header's
/// write, sendfile, uncork, then the trailing bytes' write).
const MIN_SENDFILE_BYTES: usize = 32 * 1024;

/// Where replies are written.
pub(super) trait ReplySink: AsyncWrite + Unpin + Send {
    /// Whether `send_file` copies in the kernel (else records are written from memory).
    const SENDFILE: bool;

    /// Holds back partly filled TCP segments until uncorked (TCP_CORK), so that a Fetch
    /// response's header, its records sent by sendfile and its few trailing bytes leave as
    /// full segments instead of three pushes, each waking the client for a few bytes.
    fn cork(&self, _hold: bool) -> io::Result<()> {
        Ok(())
    }

    /// Sends `bytes`, which are also `file`'s bytes at `position`.
    fn send_file(
        &mut self,
        file: &File,
        position: u64,
        bytes: &Bytes,
    ) -> impl Future<Output = io::Result<()>> + Send;
}

impl ReplySink for OwnedWriteHalf {
    const SENDFILE: bool = true;

    fn cork(&self, hold: bool) -> io::Result<()> {
        let stream: &tokio::net::TcpStream = self.as_ref();
        rustix::net::sockopt::set_tcp_cork(stream, hold).map_err(io::Error::from)
    }

    async fn send_file(&mut self, file: &File, position: u64, bytes: &Bytes) -> io::Result<()> {
        let mut offset = position;
        let mut sent = 0usize;
        while sent < bytes.len() {
            let stream: &tokio::net::TcpStream = self.as_ref();
            stream.writable().await?;
            let attempt = stream.try_io(Interest::WRITABLE, || {
                rustix::fs::sendfile(stream, file, Some(&mut offset), bytes.len() - sent)
                    .map_err(io::Error::from)
            });
            match attempt {
                Ok(0) => break, // the file ended early (cannot happen for committed bytes)
                Ok(n) => sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // Not every file system supports sendfile: the mapping has the same bytes.
                Err(e) if sent == 0 && is_unsupported(&e) => break,
                Err(e) => return Err(e),
            }
        }
        match bytes.get(sent..) {
            Some(rest) if !rest.is_empty() => self.write_all(rest).await,
            _ => Ok(()),
        }
    }
}

fn is_unsupported(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EINVAL) | Some(libc::ENOSYS) | Some(libc::EOPNOTSUPP)
    )
}

impl<S> ReplySink for WriteHalf<S>
where
    S: tokio::io::AsyncRead + AsyncWrite + Send + Unpin,
{
    const SENDFILE: bool = false;

    async fn send_file(&mut self, _file: &File, _position: u64, bytes: &Bytes) -> io::Result<()> {
        self.write_all(bytes).await
    }
}

/// What the connection does after queueing a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Flow {
    Continue,
    /// Write what is queued, then close (the request was refused).
    Close,
}

/// Replies of one connection waiting to be written, in request order.
pub(super) struct ReplyWriter<W> {
    sink: W,
    queued: Vec<OutChunk>,
    replies: usize,
    peer: SocketAddr,
}

impl<W: ReplySink> ReplyWriter<W> {
    pub(super) fn new(sink: W, peer: SocketAddr) -> Self {
        ReplyWriter {
            sink,
            queued: Vec::new(),
            replies: 0,
            peer,
        }
    }

    /// Replies queued since the last flush.
    pub(super) fn queued(&self) -> usize {
        self.replies
    }

    pub(super) fn queue(&mut self, reply: Reply) -> Flow {
        self.replies += 1;
        match reply {
            Reply::Frame(frame) => self.queued.push(OutChunk::Bytes(frame.freeze())),
            Reply::Chunks(chunks) => self.queued.extend(chunks),
            Reply::Nothing => {} // acks=0 produce: no response by design
            Reply::Close => {
                tracing::info!(peer = %self.peer, "request refused; closing connection");
                return Flow::Close;
            }
        }
        Flow::Continue
    }

    /// Writes every queued reply: one vectored write (split only where records go by
    /// sendfile) for a burst of pipelined replies instead of one each.
    pub(super) async fn flush(&mut self) -> io::Result<()> {
        let result = write_chunks(&mut self.sink, &self.queued).await;
        self.queued.clear();
        self.replies = 0;
        result
    }

    /// Queues `reply` and writes it with anything before it.
    pub(super) async fn send(&mut self, reply: Reply) -> io::Result<Flow> {
        let flow = self.queue(reply);
        self.flush().await?;
        Ok(flow)
    }

    /// Ends the stream after what was written (a clean close towards the client).
    pub(super) async fn shutdown(mut self) {
        let _ = self.sink.shutdown().await;
    }
}

/// Writes `chunks` in order: runs of in-memory pieces with writev, file records with
/// sendfile where the sink can.
async fn write_chunks<W: ReplySink>(writer: &mut W, chunks: &[OutChunk]) -> io::Result<()> {
    let by_sendfile = |c: &OutChunk| matches!(c, OutChunk::File { bytes, .. } if bytes.len() >= MIN_SENDFILE_BYTES);
    let corked = W::SENDFILE && chunks.iter().any(by_sendfile) && writer.cork(true).is_ok();
    let mut run: Vec<&Bytes> = Vec::with_capacity(chunks.len());
    for chunk in chunks {
        match chunk {
            OutChunk::File { bytes, region } if W::SENDFILE && by_sendfile(chunk) => {
                write_all_vectored(writer, &run).await?;
                run.clear();
                writer
                    .send_file(&region.file, region.position, bytes)
                    .await?;
            }
            other => run.push(other.bytes()),
        }
    }
    write_all_vectored(writer, &run).await?;
    if corked {
        // Uncorking sends what was held back.
        writer.cork(false)?;
    }
    writer.flush().await
}

async fn write_all_vectored(
    writer: &mut (impl AsyncWrite + Unpin),
    chunks: &[&Bytes],
) -> io::Result<()> {
    let mut slices: Vec<io::IoSlice<'_>> = chunks
        .iter()
        .filter(|c| !c.is_empty())
        .map(|c| io::IoSlice::new(c))
        .collect();
    let mut remaining = &mut slices[..];
    while !remaining.is_empty() {
        // writev takes at most IOV_MAX (1024 on Linux) buffers per call.
        let window = remaining
            .get(..remaining.len().min(MAX_IOVECS))
            .unwrap_or_default();
        let written = writer.write_vectored(window).await?;
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        io::IoSlice::advance_slices(&mut remaining, written);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::Arc;

    use tokio::io::AsyncReadExt;

    use super::*;

    /// A File chunk whose file and memory bytes differ, so the receiver can tell which of
    /// the two paths sent it (in the broker both hold the same records).
    fn file_chunk(len: usize) -> OutChunk {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&vec![b'F'; len]).unwrap();
        OutChunk::File {
            bytes: Bytes::from(vec![b'M'; len]),
            region: strata_storage::FileRegion {
                file: Arc::new(file),
                position: 0,
            },
        }
    }

    async fn sent_over_tcp(chunks: Vec<OutChunk>) -> Vec<u8> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let (_read_half, mut write_half) = server.into_split();
        let writer = tokio::spawn(async move {
            write_chunks(&mut write_half, &chunks).await.unwrap();
        });
        writer.await.unwrap();
        let mut received = Vec::new();
        client.shutdown().await.unwrap();
        // The server's write half was dropped with the task: read to the end.
        client.read_to_end(&mut received).await.unwrap();
        received
    }

    #[tokio::test]
    async fn large_records_go_by_sendfile_and_small_ones_with_the_rest_of_the_reply() {
        let header = || OutChunk::Bytes(Bytes::from_static(b"head"));
        let tail = || OutChunk::Bytes(Bytes::from_static(b"tail"));
        let large = MIN_SENDFILE_BYTES;
        let got = sent_over_tcp(vec![header(), file_chunk(large), tail()]).await;
        assert_eq!(got.len(), 8 + large);
        assert!(got.starts_with(b"head") && got.ends_with(b"tail"));
        assert!(
            got[4..4 + large].iter().all(|&b| b == b'F'),
            "sendfile sends the file"
        );

        let small = MIN_SENDFILE_BYTES - 1;
        let got = sent_over_tcp(vec![header(), file_chunk(small), tail()]).await;
        assert_eq!(got.len(), 8 + small);
        assert!(
            got[4..4 + small].iter().all(|&b| b == b'M'),
            "written from memory"
        );
    }
}
