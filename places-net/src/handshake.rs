//! The handshake every connection runs before anything else: magic and version, registry
//! fingerprint, and a mutual challenge-response on the cluster cookie (HMAC-SHA256).
//!
//! ```text
//! client -> node   MAGIC (8 bytes), protocol version (1 byte)
//! node -> client   Challenge { node nonce, node's registry fingerprint, node's settings } (or Refuse)
//! client -> node   Proof { client nonce, HMAC(cookie, "client" | node nonce | client nonce),
//!                          client's settings }
//! node -> client   Welcome { HMAC(cookie, "node" | client nonce | node nonce) }  (or Refuse)
//! ```
//!
//! Neither side learns anything it can replay, and a node refuses every frame before the proof.
//! The settings are each side's receive window and largest message (see
//! `places_core::transport::Settings`): each side's senders keep within the other's.
//!
//! The node's side runs on the event loop ([`node`] is async, with no thread per pending
//! connection); the client's side runs on the thread that connects ([`client`]).

use std::fmt;
use std::io::{Read, Write};

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use places_core::transport::{Settings, Window};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::error::NetError;
use crate::wire::{
    encode_frame, read_frame, write_frame, Frame, Kind, WireError, PROTOCOL_VERSION,
};

pub use crate::wire::MAGIC;
use crate::wire::{MAX_HANDSHAKE_FRAME, MAX_PROOF_FRAME};

/// The shared secret of a cluster. Nodes started by this program get it on their stdin.
#[derive(Clone, PartialEq, Eq)]
pub struct Cookie([u8; 32]);

impl Cookie {
    /// A fresh random cookie.
    ///
    /// # Errors
    ///
    /// [`NetError::Random`] if the operating system has no randomness to give.
    pub fn random() -> Result<Cookie, NetError> {
        let mut b = [0u8; 32];
        getrandom::fill(&mut b).map_err(|e| NetError::Random(e.to_string()))?;
        Ok(Cookie(b))
    }

    /// The cookie as 64 hex digits (how it travels on a node's stdin).
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Reads 64 hex digits.
    ///
    /// # Errors
    ///
    /// [`NetError::BadCookie`] for anything else.
    pub fn from_hex(s: &str) -> Result<Cookie, NetError> {
        let s = s.trim();
        if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(NetError::BadCookie);
        }
        let mut b = [0u8; 32];
        for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
            let hex = std::str::from_utf8(chunk).map_err(|_| NetError::BadCookie)?;
            b[i] = u8::from_str_radix(hex, 16).map_err(|_| NetError::BadCookie)?;
        }
        Ok(Cookie(b))
    }

    /// The MAC of `role`, `first` and `second` under this cookie.
    pub(crate) fn sign(&self, role: &[u8], first: &[u8; 32], second: &[u8; 32]) -> Vec<u8> {
        self.mac(role, first, second)
            .finalize()
            .into_bytes()
            .to_vec()
    }

    /// Whether `mac` is [`sign`](Self::sign)'s, checked in constant time.
    pub(crate) fn verify(
        &self,
        role: &[u8],
        first: &[u8; 32],
        second: &[u8; 32],
        mac: &[u8],
    ) -> bool {
        self.mac(role, first, second).verify_slice(mac).is_ok()
    }

    fn mac(&self, role: &[u8], first: &[u8; 32], second: &[u8; 32]) -> Hmac<Sha256> {
        // HMAC accepts keys of any length; 32 bytes cannot fail.
        let mut mac = match <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC takes keys of any length"),
        };
        mac.update(role);
        mac.update(first);
        mac.update(second);
        mac
    }
}

impl fmt::Debug for Cookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Cookie(..)")
    }
}

/// One registered entry as the handshake compares it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EntrySig {
    /// `module::name`.
    pub key: String,
    /// What the entry receives.
    pub receives: String,
    /// What the entry sends.
    pub sends: String,
}

/// This executable's registry, as compared in the handshake.
pub fn fingerprint() -> Vec<EntrySig> {
    let mut sigs: Vec<EntrySig> = places_core::entries()
        .into_iter()
        .map(|e| EntrySig {
            key: e.key().to_string(),
            receives: e.receives().name().to_owned(),
            sends: e.sends().name().to_owned(),
        })
        .collect();
    sigs.sort();
    sigs
}

/// What differs between two fingerprints, readably, or `None` when they agree.
pub fn compare(mine: &[EntrySig], theirs: &[EntrySig]) -> Option<String> {
    if mine == theirs {
        return None;
    }
    let find = |list: &[EntrySig], key: &str| list.iter().find(|e| e.key == key).cloned();
    let mut parts = Vec::new();
    let only_theirs: Vec<&str> = theirs
        .iter()
        .filter(|e| find(mine, &e.key).is_none())
        .map(|e| e.key.as_str())
        .collect();
    let only_mine: Vec<&str> = mine
        .iter()
        .filter(|e| find(theirs, &e.key).is_none())
        .map(|e| e.key.as_str())
        .collect();
    if !only_theirs.is_empty() {
        parts.push(format!("only the node has {}", only_theirs.join(", ")));
    }
    if !only_mine.is_empty() {
        parts.push(format!("only this program has {}", only_mine.join(", ")));
    }
    for m in mine {
        if let Some(t) = find(theirs, &m.key) {
            if t != *m {
                parts.push(format!(
                    "`{}` receives `{}` and sends `{}` here but receives `{}` and sends `{}` on the node",
                    m.key, m.receives, m.sends, t.receives, t.sends
                ));
            }
        }
    }
    Some(parts.join("; "))
}

/// A side's [`Settings`] as they travel.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct WireSettings {
    window_bytes: u64,
    window_messages: u64,
    max_message: u64,
}

impl From<Settings> for WireSettings {
    fn from(s: Settings) -> Self {
        Self {
            window_bytes: s.window.bytes,
            window_messages: s.window.messages,
            max_message: s.max_message,
        }
    }
}

impl From<WireSettings> for Settings {
    fn from(s: WireSettings) -> Self {
        Settings {
            window: Window::new(s.window_bytes, s.window_messages),
            max_message: s.max_message,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Challenge {
    nonce: [u8; 32],
    fingerprint: Vec<EntrySig>,
    settings: WireSettings,
}

#[derive(Serialize, Deserialize)]
struct Proof {
    nonce: [u8; 32],
    mac: Vec<u8>,
    settings: WireSettings,
}

#[derive(Serialize, Deserialize)]
struct Welcome {
    mac: Vec<u8>,
}

/// 32 fresh random bytes.
pub(crate) fn nonce() -> Result<[u8; 32], NetError> {
    let mut n = [0u8; 32];
    getrandom::fill(&mut n).map_err(|e| NetError::Random(e.to_string()))?;
    Ok(n)
}

fn expect(
    frame: Result<crate::wire::Frame, WireError>,
    kind: Kind,
    step: &str,
) -> Result<Vec<u8>, NetError> {
    let f = frame.map_err(|e| NetError::Handshake(format!("{step}: {e}")))?;
    if f.kind == Kind::Refuse {
        return Err(NetError::Refused(
            String::from_utf8_lossy(&f.payload).into_owned(),
        ));
    }
    if f.kind != kind {
        return Err(NetError::Handshake(format!(
            "{step}: expected a {kind:?} frame, got {:?}",
            f.kind
        )));
    }
    Ok(f.payload)
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8], step: &str) -> Result<T, NetError> {
    places_core::codec::decode(bytes).map_err(|e| NetError::Handshake(format!("{step}: {e}")))
}

fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, NetError> {
    places_core::codec::encode(v).map_err(|e| NetError::Handshake(e.to_string()))
}

/// Runs the client side on a fresh connection, announcing the default [`Settings`]; returns the
/// node's.
///
/// # Errors
///
/// [`NetError::Refused`] with the node's reason, [`NetError::Registry`] when the two executables
/// register different entries, [`NetError::Handshake`] for anything else that is wrong.
pub fn client<S: Read + Write>(stream: &mut S, cookie: &Cookie) -> Result<Settings, NetError> {
    client_with(stream, cookie, Settings::default())
}

/// [`client`], announcing `mine`.
///
/// # Errors
///
/// As [`client`].
pub fn client_with<S: Read + Write>(
    stream: &mut S,
    cookie: &Cookie,
    mine: Settings,
) -> Result<Settings, NetError> {
    let mut hello = MAGIC.to_vec();
    hello.push(PROTOCOL_VERSION);
    stream
        .write_all(&hello)
        .map_err(|e| NetError::Handshake(format!("sending hello: {e}")))?;
    let challenge: Challenge = decode(
        &expect(
            read_frame(stream, MAX_HANDSHAKE_FRAME),
            Kind::Challenge,
            "reading the challenge",
        )?,
        "reading the challenge",
    )?;
    if let Some(diff) = compare(&fingerprint(), &challenge.fingerprint) {
        let _ = write_frame(
            stream,
            Kind::Refuse,
            0,
            format!("registry mismatch: {diff}").as_bytes(),
        );
        return Err(NetError::Registry(diff));
    }
    let my_nonce = nonce()?;
    let mac = cookie
        .mac(b"client", &challenge.nonce, &my_nonce)
        .finalize()
        .into_bytes()
        .to_vec();
    let proof = encode(&Proof {
        nonce: my_nonce,
        mac,
        settings: mine.into(),
    })?;
    write_frame(stream, Kind::Proof, 0, &proof)
        .map_err(|e| NetError::Handshake(format!("sending the proof: {e}")))?;
    let welcome: Welcome = decode(
        &expect(
            read_frame(stream, MAX_HANDSHAKE_FRAME),
            Kind::Welcome,
            "reading the welcome",
        )?,
        "reading the welcome",
    )?;
    cookie
        .mac(b"node", &my_nonce, &challenge.nonce)
        .verify_slice(&welcome.mac)
        .map_err(|_| NetError::Handshake("the node does not know the cluster cookie".into()))?;
    Ok(challenge.settings.into())
}

/// Reads one handshake frame on the event loop.
async fn read_frame_async<S: AsyncRead + Unpin>(
    stream: &mut S,
    max: u32,
) -> Result<Frame, WireError> {
    let mut len = [0u8; 4];
    match stream.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(WireError::Closed),
        Err(e) => return Err(WireError::Io(e)),
    }
    let want = crate::wire::check_length(u32::from_le_bytes(len), max)?;
    let mut head = [0u8; 10];
    stream
        .read_exact(&mut head)
        .await
        .map_err(|_| WireError::Truncated)?;
    let (kind, channel) = crate::wire::parse_head(&head)?;
    let mut payload = vec![0u8; want];
    stream
        .read_exact(&mut payload)
        .await
        .map_err(|_| WireError::Truncated)?;
    Ok(Frame {
        kind,
        channel,
        payload,
    })
}

async fn send_async<S: AsyncWrite + Unpin>(
    stream: &mut S,
    kind: Kind,
    payload: &[u8],
) -> std::io::Result<()> {
    stream.write_all(&encode_frame(kind, 0, payload)).await?;
    // Through TLS, the record may wait in the session until flushed.
    stream.flush().await
}

/// Refuses a client that greets a node requiring TLS in the clear, saying why.
pub(crate) async fn refuse_plain<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
) -> std::io::Result<()> {
    let mut hello = [0u8; 9];
    stream.read_exact(&mut hello).await?;
    send_async(
        stream,
        Kind::Refuse,
        b"this node requires TLS (give the client the cluster's Tls: NodeOptions::tls or use_cluster_tls)",
    )
    .await
}

/// Runs the node side on a fresh connection, on the event loop, announcing `mine`; returns the
/// client's settings. On failure the peer has been sent a refusal where possible, and the caller
/// should close the connection.
///
/// # Errors
///
/// [`NetError::Handshake`] or [`NetError::Refused`] saying what the peer did wrong.
pub async fn node<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    cookie: &Cookie,
    mine: Settings,
) -> Result<Settings, NetError> {
    let mut hello = [0u8; 9];
    stream
        .read_exact(&mut hello)
        .await
        .map_err(|e| NetError::Handshake(format!("reading the hello: {e}")))?;
    if &hello[..8] != MAGIC {
        // 0x16 0x03: a TLS handshake record.
        return Err(NetError::Handshake(if hello[..2] == [0x16, 0x03] {
            "the peer speaks TLS, and this node was started without it".into()
        } else {
            "the peer is not a places client (bad magic)".into()
        }));
    }
    if hello[8] != PROTOCOL_VERSION {
        let why = format!(
            "protocol version {} requested, this node speaks {PROTOCOL_VERSION}",
            hello[8]
        );
        let _ = send_async(stream, Kind::Refuse, why.as_bytes()).await;
        return Err(NetError::Handshake(why));
    }
    let my_nonce = nonce()?;
    let challenge = encode(&Challenge {
        nonce: my_nonce,
        fingerprint: fingerprint(),
        settings: mine.into(),
    })?;
    send_async(stream, Kind::Challenge, &challenge)
        .await
        .map_err(|e| NetError::Handshake(format!("sending the challenge: {e}")))?;
    let proof: Proof = decode(
        &expect(
            read_frame_async(stream, MAX_PROOF_FRAME).await,
            Kind::Proof,
            "reading the proof",
        )?,
        "reading the proof",
    )?;
    if cookie
        .mac(b"client", &my_nonce, &proof.nonce)
        .verify_slice(&proof.mac)
        .is_err()
    {
        let _ = send_async(stream, Kind::Refuse, b"wrong cluster cookie").await;
        return Err(NetError::Handshake(
            "the peer does not know the cluster cookie".into(),
        ));
    }
    let mac = cookie
        .mac(b"node", &proof.nonce, &my_nonce)
        .finalize()
        .into_bytes()
        .to_vec();
    let welcome = encode(&Welcome { mac })?;
    send_async(stream, Kind::Welcome, &welcome)
        .await
        .map_err(|e| NetError::Handshake(format!("sending the welcome: {e}")))?;
    Ok(proof.settings.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};

    fn pair(
        node_cookie: Cookie,
        client_cookie: Cookie,
    ) -> (Result<Settings, NetError>, Result<Settings, NetError>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let t = std::thread::spawn(move || {
            let (s, _) = listener.accept().unwrap();
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .build()
                .unwrap();
            rt.block_on(async {
                s.set_nonblocking(true).unwrap();
                let mut s = tokio::net::TcpStream::from_std(s).unwrap();
                let mine = Settings {
                    window: Window::new(10, 20),
                    max_message: 30,
                };
                node(&mut s, &node_cookie, mine).await
            })
        });
        let mut c = TcpStream::connect(addr).unwrap();
        let client_result = client(&mut c, &client_cookie);
        drop(c);
        (client_result, t.join().unwrap())
    }

    #[test]
    fn matching_cookies_shake_hands_and_exchange_settings() {
        let cookie = Cookie::random().unwrap();
        let (c, n) = pair(cookie.clone(), cookie);
        let node_settings = c.unwrap();
        assert_eq!(node_settings.window, Window::new(10, 20));
        assert_eq!(node_settings.max_message, 30);
        assert_eq!(n.unwrap(), Settings::default());
    }

    #[test]
    fn a_wrong_cookie_is_refused_on_both_sides() {
        let (c, n) = pair(Cookie::random().unwrap(), Cookie::random().unwrap());
        assert!(
            matches!(c, Err(NetError::Refused(ref why)) if why.contains("cookie")),
            "{c:?}"
        );
        assert!(
            matches!(n, Err(NetError::Handshake(ref why)) if why.contains("cookie")),
            "{n:?}"
        );
    }

    #[test]
    fn cookies_round_trip_through_hex() {
        let c = Cookie::random().unwrap();
        assert_eq!(Cookie::from_hex(&c.to_hex()).unwrap(), c);
        assert!(Cookie::from_hex("nothex").is_err());
        assert_eq!(format!("{c:?}"), "Cookie(..)");
    }

    #[test]
    fn fingerprint_differences_are_spelled_out() {
        let e = |k: &str, r: &str| EntrySig {
            key: k.into(),
            receives: r.into(),
            sends: "()".into(),
        };
        assert_eq!(compare(&[e("a::x", "u8")], &[e("a::x", "u8")]), None);
        let d = compare(
            &[e("a::x", "u8"), e("a::y", "u8")],
            &[e("a::x", "u16"), e("a::z", "u8")],
        )
        .unwrap();
        assert!(d.contains("only the node has a::z"), "{d}");
        assert!(d.contains("only this program has a::y"), "{d}");
        assert!(d.contains("`a::x` receives `u8`"), "{d}");
    }
}
