//! A loopback HTTP stand-in for unit tests of the clients: every request read on a
//! connection gets the reply `answer` gives for its text, a head and then, for a hostile
//! server, a body chunk sent again and again until the client hangs up.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What the stand-in sends for one request.
pub struct Reply {
    pub head: String,
    /// Written after the head for as long as the client reads (an endless body).
    pub endless: Option<String>,
}

impl Reply {
    /// A whole answer: status line, headers, and `body` with its length.
    pub fn whole(status: &str, headers: &str, body: &str) -> Reply {
        Reply {
            head: format!(
                "HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\n\r\n{body}",
                body.len()
            ),
            endless: None,
        }
    }
}

/// Starts the stand-in on 127.0.0.1; returns `HOST:PORT`.
pub async fn serve(answer: fn(&str) -> Reply) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while let Ok(n) = sock.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    let reply = answer(&String::from_utf8_lossy(&buf[..n]));
                    if sock.write_all(reply.head.as_bytes()).await.is_err() {
                        break;
                    }
                    if let Some(chunk) = reply.endless {
                        while sock.write_all(chunk.as_bytes()).await.is_ok() {}
                        return;
                    }
                }
            });
        }
    });
    addr
}
