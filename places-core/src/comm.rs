//! Communicator groups: the one type behind fork-join groups and RMPI.
//!
//! A [`Comm`] is what one member of a group knows: its rank ([`id`](Comm::id)), the group's size
//! ([`cnt`](Comm::cnt)), and a link to every other member (the dissertation's communicator group:
//! "the integer identity of the current place, the total number of places in the communicator
//! group, and a vector of place channels for communicating with the other places"). Links are a
//! trait, so the same `Comm` works whether the members are threads in one process or places on
//! other nodes; the forms built on it (`cg_for!`, `cg_pipeline!`, barriers) never ask which.

use std::any::{Any, TypeId};
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use crate::channel::{raw_pair, PlaceChannel};
use crate::codec;
use crate::error::{ChannelError, CodecError};
use crate::message::Message;
use crate::stash::Stash;

mod barrier;
use barrier::SharedBarrier;

/// Why a communicator operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CommError {
    /// A rank outside `0..cnt`.
    #[error("rank {rank} is not a member of this group of {cnt}")]
    Rank {
        /// The rank asked for.
        rank: usize,
        /// The size of the group.
        cnt: usize,
    },
    /// The member is gone (it ended, panicked, or its node died) and sent nothing more.
    #[error("member {rank} of the group is gone")]
    MemberGone {
        /// The member that is gone.
        rank: usize,
    },
    /// The link to member `rank` (in another process) broke: the connection failed, or the
    /// member sent something that is not a message. The member may still run.
    #[error("the link to member {rank} of the group failed: {reason}")]
    LinkBroken {
        /// The member at the other end.
        rank: usize,
        /// What happened to the link.
        reason: String,
    },
    /// The message cannot travel to member `rank` (it does not encode, or its type name is too
    /// long for a link); nothing was sent.
    #[error("a message cannot be sent to member {rank} of the group: {reason}")]
    Unsendable {
        /// The member it was for.
        rank: usize,
        /// Why it cannot be sent.
        reason: String,
    },
    /// The message from `rank` is of another type than the receiver asked for.
    #[error("member {rank} sent a `{found}` where a `{expected}` was expected")]
    TypeMismatch {
        /// The sender.
        rank: usize,
        /// The type the receiver asked for.
        expected: &'static str,
        /// The type that was sent.
        found: String,
    },
    /// A receive from oneself with nothing sent to oneself: it would wait forever.
    #[error("member {rank} receives from itself, but it has sent itself nothing")]
    EmptySelf {
        /// The member.
        rank: usize,
    },
    /// The message from `rank` arrived as bytes that do not decode.
    #[error("the message from member {rank} does not decode: {source}")]
    Codec {
        /// The sender.
        rank: usize,
        /// What the codec said.
        #[source]
        source: CodecError,
    },
}

impl CommError {
    /// What a link's failure means for the group: a closed link is a member gone.
    fn from_link(rank: usize, e: ChannelError) -> Self {
        match e {
            ChannelError::Lost(reason) => CommError::LinkBroken { rank, reason },
            ChannelError::Unsendable(reason) => CommError::Unsendable { rank, reason },
            _ => CommError::MemberGone { rank },
        }
    }
}

/// What a link carries: a tag that keeps collective traffic apart from user messages, and the
/// message itself.
pub struct Envelope {
    tag: Tag,
    payload: Payload,
}

/// What kind of message an envelope holds: a receive takes the first message of its tag from a
/// member and leaves the others queued, so a barrier never swallows a user message or the other
/// way round.
///
/// Tags are open: `Tag::user(n)` for a program's own kinds of message (`send`/`recv` use
/// [`Tag::USER`]), `Tag::reserved(n)` for layers built on `Comm` (barriers, and collectives such
/// as RMPI's), which can add kinds of their own without changing this crate.
///
/// # Examples
///
/// ```
/// use places::{Comm, Tag};
///
/// let g = Comm::local_group(2);
/// g[1].send_tagged(0, Tag::user(7), "later".to_string()).unwrap();
/// g[1].send(0, 1u8).unwrap();
/// // Tag 0 (`send`) first, past the queued tag-7 message, which then still arrives.
/// assert_eq!(g[0].recv::<u8>(1).unwrap(), 1);
/// assert_eq!(g[0].recv_tagged::<String>(1, Tag::user(7)).unwrap(), "later");
/// ```
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct Tag(u64);

impl Tag {
    /// The first reserved tag: tags from here on belong to layers built on `Comm`.
    const RESERVED: u32 = 1 << 31;
    /// What [`Comm::send`] and [`Comm::recv`] use.
    pub const USER: Tag = Tag(0);
    /// Barrier messages (between members that do not share memory).
    pub const BARRIER: Tag = Tag(Self::RESERVED as u64);

    /// A program's own tag `n`.
    ///
    /// # Panics
    ///
    /// If `n >= 2^31`: those tags are reserved.
    pub const fn user(n: u32) -> Tag {
        assert!(n < Self::RESERVED, "user tags are below 2^31");
        Tag(n as u64)
    }

    /// Reserved tag `n`, for a layer built on `Comm`. `Tag::reserved(0)` is [`Tag::BARRIER`];
    /// each layer should take a range of its own.
    ///
    /// # Panics
    ///
    /// If `n >= 2^31`.
    pub const fn reserved(n: u32) -> Tag {
        assert!(n < Self::RESERVED, "reserved tags are numbered below 2^31");
        Tag((Self::RESERVED + n) as u64)
    }

    /// Whether this is a reserved tag.
    pub const fn is_reserved(self) -> bool {
        (self.0 as u32) >= Self::RESERVED
    }

    /// This tag in communication context `context`. A context keeps the messages of a
    /// sub-group (such as RMPI's `split`) apart from those of its parent group and of every
    /// other sub-group between the same two members; context 0 is the group's own, which
    /// [`user`](Self::user) and [`reserved`](Self::reserved) tags are in.
    ///
    /// # Examples
    ///
    /// ```
    /// use places::Tag;
    ///
    /// let t = Tag::user(5);
    /// assert_eq!(t.context(), 0);
    /// assert_ne!(t.in_context(3), t);
    /// assert_eq!(t.in_context(3).context(), 3);
    /// assert_eq!(t.in_context(3).in_context(0), t);
    /// ```
    pub const fn in_context(self, context: u32) -> Tag {
        Tag((self.0 & 0xffff_ffff) | ((context as u64) << 32))
    }

    /// The communication context this tag is in (see [`in_context`](Self::in_context)).
    pub const fn context(self) -> u32 {
        (self.0 >> 32) as u32
    }

    /// The tag's number on the wire.
    pub const fn bits(self) -> u64 {
        self.0
    }

    /// The tag whose number on the wire is `bits` (the inverse of [`bits`](Self::bits)).
    pub const fn from_bits(bits: u64) -> Tag {
        Tag(bits)
    }
}

/// A value's raw encoding byte and bytes, if it has them (see [`codec::raw_view`]).
pub type RawView = fn(&(dyn Any + Send)) -> Option<(u8, &[u8])>;

/// A message in flight: moved as a value between threads, or encoded bytes between nodes.
pub enum Payload {
    /// A value moved within this process.
    Local {
        /// The value.
        value: Box<dyn Any + Send>,
        /// Its type's name, for mismatch errors.
        type_name: &'static str,
        /// Encodes `value` (of that type) when it has to leave the process.
        encode: fn(&(dyn Any + Send)) -> Result<Vec<u8>, CodecError>,
        /// For a `Vec<f64>`, `Vec<i64>` or `Vec<u8>`: its encoding byte and its bytes as they
        /// are in memory ([`codec::raw_view`]), which a link can write after the byte without
        /// encoding or copying them; `None` for other types.
        raw: RawView,
    },
    /// A value encoded by the [`codec`](crate::codec), from another process.
    Encoded {
        /// The sender's name of its type, checked against the receiver's before decoding.
        type_name: String,
        /// The encoded value: [`codec::encode`]'s bytes, or an encoding byte of the raw
        /// encodings ([`codec::RAW_F64S`], ...) followed by the raw bytes.
        bytes: Vec<u8>,
    },
}

/// An envelope as it crosses a process boundary: see [`EncodedLink`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WireEnvelope {
    /// The envelope's tag.
    pub tag: Tag,
    /// The sender's name of the value's type.
    pub type_name: String,
    /// The value, encoded by the [`codec`](crate::codec).
    pub bytes: Vec<u8>,
}

/// A link over a channel that may cross nodes: envelopes travel encoded (as [`WireEnvelope`]s),
/// and a receive checks the sender's type name before it decodes, so a wrong type is an error
/// that names both types, never a confused decoder. [`Comm::invitations`] makes a group of
/// such links whose members can live on any node.
pub struct EncodedLink(pub PlaceChannel<WireEnvelope>);

impl Link for EncodedLink {
    fn send(&self, envelope: Envelope) -> Result<(), ChannelError> {
        let tag = envelope.tag;
        let wire = match envelope.payload {
            Payload::Local {
                value,
                type_name,
                encode,
                ..
            } => WireEnvelope {
                tag,
                type_name: type_name.to_owned(),
                bytes: encode(&*value).map_err(|e| ChannelError::Unsendable(e.to_string()))?,
            },
            Payload::Encoded { type_name, bytes } => WireEnvelope {
                tag,
                type_name,
                bytes,
            },
        };
        self.0.put(wire)
    }

    fn recv(&self) -> Result<Envelope, ChannelError> {
        Ok(Self::unwire(self.0.get()?))
    }

    fn try_recv(&self) -> Result<Option<Envelope>, ChannelError> {
        match self.0.try_get() {
            Ok(w) => Ok(Some(Self::unwire(w))),
            Err(ChannelError::Empty) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

impl EncodedLink {
    fn unwire(w: WireEnvelope) -> Envelope {
        let WireEnvelope {
            tag,
            type_name,
            bytes,
        } = w;
        Envelope {
            tag,
            payload: Payload::Encoded { type_name, bytes },
        }
    }
}

/// What one member of a group needs to join it, wherever it runs: its rank and a channel to
/// every other member. Send each to the place that plays that member (it travels in a message,
/// to a local place or to a place on another node), which calls [`join`](Self::join).
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Invitation {
    id: usize,
    links: Vec<Option<PlaceChannel<WireEnvelope>>>,
}

impl Invitation {
    /// The member's rank.
    pub fn id(&self) -> usize {
        self.id
    }

    /// This member's view of the group.
    pub fn join(self) -> Comm {
        let links = self
            .links
            .into_iter()
            .map(|l| l.map(|ch| Box::new(EncodedLink(ch)) as Box<dyn Link>))
            .collect();
        Comm::from_links(self.id, links)
    }
}

impl fmt::Debug for Invitation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Invitation")
            .field("id", &self.id)
            .field("cnt", &self.links.len())
            .finish()
    }
}

impl Envelope {
    /// An envelope holding `value` under `tag`.
    pub fn local<T: Message>(tag: Tag, value: T) -> Self {
        fn encode<T: Message>(value: &(dyn Any + Send)) -> Result<Vec<u8>, CodecError> {
            match value.downcast_ref::<T>() {
                // As a link that writes the raw view does: a `Packed`'s message form is its raw
                // encoding and body, never its serde form (which `decode` would misread).
                Some(v) => codec::encode_with_raw(v),
                None => unreachable!("an envelope's encoder is made for its value's type"),
            }
        }
        fn raw<T: Message>(value: &(dyn Any + Send)) -> Option<(u8, &[u8])> {
            value.downcast_ref::<T>().and_then(codec::raw_view)
        }
        Self {
            tag,
            payload: Payload::Local {
                value: Box::new(value),
                type_name: std::any::type_name::<T>(),
                encode: encode::<T>,
                raw: raw::<T>,
            },
        }
    }

    /// An envelope holding a value another process encoded with the [`codec`](crate::codec),
    /// under its sender's name of the value's type (checked against the receiver's before it
    /// decodes).
    pub fn encoded(tag: Tag, type_name: String, bytes: Vec<u8>) -> Self {
        Self {
            tag,
            payload: Payload::Encoded { type_name, bytes },
        }
    }

    /// The envelope's tag.
    pub fn tag(&self) -> Tag {
        self.tag
    }

    /// The envelope's payload.
    pub fn into_payload(self) -> Payload {
        self.payload
    }
}

impl fmt::Debug for Envelope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match &self.payload {
            Payload::Local { type_name, .. } => format!("local {type_name}"),
            Payload::Encoded { type_name, bytes } => {
                format!("{} encoded bytes of {type_name}", bytes.len())
            }
        };
        f.debug_struct("Envelope")
            .field("tag", &self.tag)
            .field("payload", &what)
            .finish()
    }
}

/// A two-way connection from one member to another. Local groups use place channels; the network
/// layer provides links to members on other nodes.
pub trait Link: Send {
    /// Sends an envelope to the member at the other end.
    ///
    /// # Errors
    ///
    /// [`ChannelError::Closed`] when the other member is gone.
    fn send(&self, envelope: Envelope) -> Result<(), ChannelError>;

    /// Waits for the next envelope from the member at the other end.
    ///
    /// # Errors
    ///
    /// [`ChannelError::Closed`] when the other member is gone and sent nothing more.
    fn recv(&self) -> Result<Envelope, ChannelError>;

    /// The next envelope from the member at the other end if one has arrived (`None` if not),
    /// without waiting: what non-blocking receives poll.
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv).
    fn try_recv(&self) -> Result<Option<Envelope>, ChannelError>;
}

impl Link for PlaceChannel<Envelope> {
    fn send(&self, envelope: Envelope) -> Result<(), ChannelError> {
        self.put(envelope)
    }

    fn recv(&self) -> Result<Envelope, ChannelError> {
        self.get()
    }

    fn try_recv(&self) -> Result<Option<Envelope>, ChannelError> {
        match self.try_get() {
            Ok(e) => Ok(Some(e)),
            Err(ChannelError::Empty) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// One member's view of a communicator group.
///
/// Members are numbered `0..cnt()`. Point-to-point messages between two members arrive in the
/// order they were sent. A `Comm` belongs to one member: it can be moved to another thread but
/// not shared between threads.
///
/// # Examples
///
/// A group of three threads passing a token around a ring:
///
/// ```
/// use places::Comm;
///
/// let comms = Comm::local_group(3);
/// let handles: Vec<_> = comms
///     .into_iter()
///     .map(|cg| {
///         std::thread::spawn(move || {
///             let next = (cg.id() + 1) % cg.cnt();
///             let prev = (cg.id() + cg.cnt() - 1) % cg.cnt();
///             if cg.id() == 0 {
///                 cg.send(next, 1u32).unwrap();
///                 cg.recv::<u32>(prev).unwrap()
///             } else {
///                 let token: u32 = cg.recv(prev).unwrap();
///                 cg.send(next, token + 1).unwrap();
///                 token
///             }
///         })
///     })
///     .collect();
/// let tokens: Vec<u32> = handles.into_iter().map(|h| h.join().unwrap()).collect();
/// assert_eq!(tokens, [3, 1, 2]);
/// ```
pub struct Comm {
    id: usize,
    cnt: usize,
    /// `links[j]` reaches member `j`; `None` at `id`.
    links: Vec<Option<Box<dyn Link>>>,
    /// Per sender, envelopes received while waiting for another tag (and, at `id`, messages a
    /// member sent itself).
    pending: Vec<Stash<Envelope>>,
    /// The group's barrier when all members share this process's memory (`local_group`);
    /// otherwise barriers are messages.
    shared_barrier: Option<Arc<SharedBarrier>>,
    /// The lowest communication context ([`Tag::in_context`]) no sub-group of this member's
    /// uses yet; 0 is the group's own.
    next_context: std::cell::Cell<u32>,
    /// `Comm` is `Send` but not `Sync`: its stashes are `RefCell`s.
    _not_sync: PhantomData<std::cell::Cell<()>>,
}

impl Comm {
    /// Builds member `id`'s view from its links (`links[id]` must be `None`). Used by runtimes
    /// that connect members their own way, such as the network layer.
    ///
    /// # Panics
    ///
    /// If `id >= links.len()` or `links[id]` is a link: a member has no link to itself.
    pub fn from_links(id: usize, links: Vec<Option<Box<dyn Link>>>) -> Self {
        assert!(
            id < links.len(),
            "member {id} of a group of {}",
            links.len()
        );
        assert!(
            links[id].is_none(),
            "member {id} must have no link to itself"
        );
        let cnt = links.len();
        Self {
            id,
            cnt,
            links,
            pending: (0..cnt).map(|_| Stash::new()).collect(),
            shared_barrier: None,
            next_context: std::cell::Cell::new(1),
            _not_sync: PhantomData,
        }
    }

    /// A group of `cnt` members in this process, fully connected by place channels; element `i`
    /// is member `i`'s view. Hand each to the thread or place that plays that member.
    pub fn local_group(cnt: usize) -> Vec<Comm> {
        let barrier = Arc::new(SharedBarrier::new(cnt));
        let mut group = Self::linked_group(cnt);
        for member in &mut group {
            member.shared_barrier = Some(barrier.clone());
        }
        group
    }

    /// The invitations of a new group of `cnt` members that may run anywhere: element `i` is
    /// member `i`'s. Send each to the place (on this node or another) that plays that member;
    /// it calls [`Invitation::join`] for its [`Comm`]. Messages between members travel encoded
    /// and type-checked ([`EncodedLink`]); barriers are messages.
    ///
    /// Between places on two other nodes these channels go through this program (two hops).
    /// `places::MeshInvitation`s (what `fork_join!(nodes = ..)` uses) link members in
    /// different processes directly instead.
    ///
    /// # Examples
    ///
    /// ```
    /// let group = places::Comm::invitations(2);
    /// let handles: Vec<_> = group
    ///     .into_iter()
    ///     .map(|inv| {
    ///         std::thread::spawn(move || {
    ///             let cg = inv.join();
    ///             cg.barrier();
    ///             let other = 1 - cg.id();
    ///             cg.send(other, format!("hello from {}", cg.id())).unwrap();
    ///             cg.recv::<String>(other).unwrap()
    ///         })
    ///     })
    ///     .collect();
    /// let got: Vec<String> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    /// assert_eq!(got, ["hello from 1", "hello from 0"]);
    /// ```
    pub fn invitations(cnt: usize) -> Vec<Invitation> {
        let mut links: Vec<Vec<Option<PlaceChannel<WireEnvelope>>>> =
            (0..cnt).map(|_| (0..cnt).map(|_| None).collect()).collect();
        for (i, j) in (0..cnt).flat_map(|i| ((i + 1)..cnt).map(move |j| (i, j))) {
            let (a, b) = crate::channel::place_channel::<WireEnvelope, WireEnvelope>();
            links[i][j] = Some(a);
            links[j][i] = Some(b);
        }
        links
            .into_iter()
            .enumerate()
            .map(|(id, links)| Invitation { id, links })
            .collect()
    }

    /// A group of `cnt` members in this process linked by place channels only: barriers are
    /// messages, as between nodes.
    fn linked_group(cnt: usize) -> Vec<Comm> {
        let mut links: Vec<Vec<Option<Box<dyn Link>>>> =
            (0..cnt).map(|_| (0..cnt).map(|_| None).collect()).collect();
        for (i, j) in (0..cnt).flat_map(|i| ((i + 1)..cnt).map(move |j| (i, j))) {
            let (a, b) = raw_pair::<Envelope, Envelope>();
            links[i][j] = Some(Box::new(a));
            links[j][i] = Some(Box::new(b));
        }
        links
            .into_iter()
            .enumerate()
            .map(|(id, l)| Comm::from_links(id, l))
            .collect()
    }

    /// This member's rank, in `0..cnt()` (Racket's `CG-id`, RMPI's `rmpi-id`).
    pub fn id(&self) -> usize {
        self.id
    }

    /// The number of members (RMPI's `rmpi-cnt`).
    pub fn cnt(&self) -> usize {
        self.cnt
    }

    /// Sends `value` to member `dest`; returns at once.
    ///
    /// # Errors
    ///
    /// [`CommError::Rank`] for a rank outside the group, [`CommError::MemberGone`] when `dest`
    /// is gone.
    pub fn send<T: Message>(&self, dest: usize, value: T) -> Result<(), CommError> {
        self.send_tagged(dest, Tag::USER, value)
    }

    /// Waits for the next message from member `src`.
    ///
    /// # Errors
    ///
    /// [`CommError::Rank`], [`CommError::MemberGone`] when `src` is gone and sent nothing more,
    /// [`CommError::TypeMismatch`] when `src` sent another type (the message is dropped),
    /// [`CommError::EmptySelf`] for a receive from oneself with nothing sent to oneself.
    pub fn recv<T: Message>(&self, src: usize) -> Result<T, CommError> {
        self.recv_tagged(src, Tag::USER)
    }

    /// Blocks until every member has called `barrier` (the dissertation's `CGBarrier`).
    ///
    /// # Panics
    ///
    /// If a member is gone before it reached the barrier: the group cannot go on, and the
    /// panic releases this member too (inside `fork_join!`, the group's result is then the
    /// first member's failure). [`try_barrier`](Self::try_barrier) returns the error instead.
    pub fn barrier(&self) {
        if let Err(e) = self.try_barrier() {
            panic!("barrier of member {} failed: {e}", self.id);
        }
    }

    /// [`barrier`](Self::barrier), returning the error instead of panicking.
    ///
    /// # Errors
    ///
    /// [`CommError::MemberGone`] naming a member that is gone.
    ///
    /// Members that share this process's memory (a [`local_group`](Self::local_group), which
    /// is what `fork_join!` uses) meet on shared counters: a waiter spins for a few
    /// microseconds, then yields, then sleeps, so a barrier between busy members costs well under
    /// a microsecond and an idle wait costs no core. A member whose `Comm` is dropped before it
    /// arrives fails every barrier of the group from then on, for everyone.
    ///
    /// Members linked by messages gather at member 0, which then releases the others. When it
    /// fails at member 0, the members that already reached it are not released: they wait until
    /// member 0's `Comm` is dropped (then they see [`CommError::MemberGone`] for member 0). A
    /// member 0 that goes on after a failed barrier should therefore end its part of the group
    /// promptly.
    pub fn try_barrier(&self) -> Result<(), CommError> {
        if let Some(barrier) = &self.shared_barrier {
            return barrier
                .wait()
                .map_err(|rank| CommError::MemberGone { rank });
        }
        // Gather at member 0, then release: 2 (cnt - 1) messages.
        if self.id == 0 {
            for m in 1..self.cnt {
                self.recv_tagged::<()>(m, Tag::BARRIER)?;
            }
            for m in 1..self.cnt {
                self.send_tagged(m, Tag::BARRIER, ())?;
            }
        } else {
            self.send_tagged(0, Tag::BARRIER, ())?;
            self.recv_tagged::<()>(0, Tag::BARRIER)?;
        }
        Ok(())
    }

    /// This member's share of `range`, for `cg_for!`: the range is cut into `cnt()` contiguous
    /// blocks whose lengths differ by at most one, the first `len % cnt` blocks being the longer;
    /// member `i` gets block `i`. 900 iterations over 3 members: `0..300`, `300..600`, `600..900`.
    ///
    /// # Examples
    ///
    /// ```
    /// let comms = places::Comm::local_group(3);
    /// let shares: Vec<Vec<u32>> = comms.iter().map(|cg| cg.partition(0..10u32).collect()).collect();
    /// assert_eq!(shares, [vec![0, 1, 2, 3], vec![4, 5, 6], vec![7, 8, 9]]);
    /// ```
    pub fn partition<R: CgRange>(&self, range: R) -> Partition<R::Item> {
        Partition::block(range, self.id, self.cnt)
    }

    /// The lowest communication context ([`Tag::in_context`]) that no sub-group of this
    /// member uses yet. Layers that make sub-groups (RMPI's `split`) agree on a new context
    /// by taking the largest of their members' free contexts, then
    /// [`reserve_contexts`](Self::reserve_contexts) up to it.
    pub fn free_context(&self) -> u32 {
        self.next_context.get()
    }

    /// Marks every context below `next` as used by a sub-group of this member.
    pub fn reserve_contexts(&self, next: u32) {
        if next > self.next_context.get() {
            self.next_context.set(next);
        }
    }

    fn link(&self, rank: usize) -> Result<Option<&dyn Link>, CommError> {
        match self.links.get(rank) {
            Some(l) => Ok(l.as_deref()),
            None => Err(CommError::Rank {
                rank,
                cnt: self.cnt,
            }),
        }
    }

    /// Sends `value` to member `dest` under `tag`; returns at once. A receive of another tag
    /// leaves it queued.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send).
    pub fn send_tagged<T: Message>(
        &self,
        dest: usize,
        tag: Tag,
        value: T,
    ) -> Result<(), CommError> {
        let envelope = Envelope::local(tag, value);
        match self.link(dest)? {
            None => {
                self.pending[dest].keep(envelope);
                Ok(())
            }
            Some(link) => link
                .send(envelope)
                .map_err(|e| CommError::from_link(dest, e)),
        }
    }

    /// Waits for the first message of `tag` from member `src`; messages of other tags that
    /// arrive first stay queued, in order, for the receives that ask for them.
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv).
    pub fn recv_tagged<T: Message>(&self, src: usize, tag: Tag) -> Result<T, CommError> {
        let envelope = self.recv_envelope(src, tag)?;
        decode(src, envelope.payload)
    }

    /// The first message of `tag` from member `src` if it has arrived, `None` if not yet,
    /// without waiting (for non-blocking receives). Messages of other tags that arrived are
    /// kept, in order, as [`recv_tagged`](Self::recv_tagged) keeps them.
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv), except that a receive from oneself with nothing sent is `None`.
    ///
    /// # Examples
    ///
    /// ```
    /// use places::{Comm, Tag};
    ///
    /// let g = Comm::local_group(2);
    /// assert_eq!(g[0].try_recv_tagged::<u8>(1, Tag::USER).unwrap(), None);
    /// g[1].send(0, 7u8).unwrap();
    /// assert_eq!(g[0].try_recv_tagged::<u8>(1, Tag::USER).unwrap(), Some(7));
    /// ```
    pub fn try_recv_tagged<T: Message>(
        &self,
        src: usize,
        tag: Tag,
    ) -> Result<Option<T>, CommError> {
        let link = self.link(src)?;
        let stash = &self.pending[src];
        let wanted = |e: &Envelope| e.tag == tag;
        if let Some(e) = stash.take(wanted) {
            return decode(src, e.payload).map(Some);
        }
        let Some(link) = link else {
            return Ok(None);
        };
        loop {
            match link.try_recv() {
                Ok(Some(e)) if wanted(&e) => return decode(src, e.payload).map(Some),
                Ok(Some(e)) => stash.keep(e),
                Ok(None) => return Ok(None),
                Err(e) => return Err(CommError::from_link(src, e)),
            }
        }
    }

    /// The first envelope of `tag` from `src`.
    fn recv_envelope(&self, src: usize, tag: Tag) -> Result<Envelope, CommError> {
        let link = self.link(src)?;
        let stash = &self.pending[src];
        let wanted = |e: &Envelope| e.tag == tag;
        match link {
            None => stash.take(wanted).ok_or(CommError::EmptySelf { rank: src }),
            Some(link) => stash.take_or_receive(wanted, || {
                link.recv().map_err(|e| CommError::from_link(src, e))
            }),
        }
    }
}

impl Drop for Comm {
    fn drop(&mut self) {
        if let Some(barrier) = &self.shared_barrier {
            barrier.depart(self.id);
        }
    }
}

impl fmt::Debug for Comm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Comm")
            .field("id", &self.id)
            .field("cnt", &self.cnt)
            .finish_non_exhaustive()
    }
}

impl AsRef<Comm> for Comm {
    fn as_ref(&self) -> &Comm {
        self
    }
}

fn decode<T: Message>(rank: usize, payload: Payload) -> Result<T, CommError> {
    let expected = std::any::type_name::<T>();
    match payload {
        Payload::Local {
            value, type_name, ..
        } => value
            .downcast::<T>()
            .map(|b| *b)
            .map_err(|_| CommError::TypeMismatch {
                rank,
                expected,
                found: type_name.to_owned(),
            }),
        // Both sides run the same program (nodes check that their registries agree), so one
        // type has one name on both.
        Payload::Encoded { type_name, .. } if type_name != expected => {
            Err(CommError::TypeMismatch {
                rank,
                expected,
                found: type_name,
            })
        }
        Payload::Encoded { mut bytes, .. } => match bytes.first() {
            // A packed value is the message as it came: raw numbers copied once into words
            // (unpacked without another copy), other bytes moved down in place.
            Some(&encoding) if TypeId::of::<T>() == TypeId::of::<codec::Packed>() => {
                let body = match encoding {
                    codec::RAW_I64S | codec::RAW_F64S => {
                        codec::Body::from_slice(encoding, &bytes[1..])
                    }
                    _ => {
                        bytes.remove(0);
                        codec::Body::Bytes(bytes)
                    }
                };
                codec::decode_body(encoding, body)
            }
            // A raw `Vec<u8>` is the bytes after the encoding byte: moved down in place, not
            // copied into a fresh allocation.
            Some(&codec::RAW_BYTES) if TypeId::of::<T>() == TypeId::of::<Vec<u8>>() => {
                bytes.remove(0);
                (Box::new(bytes) as Box<dyn Any>)
                    .downcast::<T>()
                    .map(|b| *b)
                    .map_err(|_| unreachable!("the type was checked"))
            }
            // A raw encoding: the encoding byte, then the value's bytes.
            Some(&encoding) if encoding != codec::CODEC_VERSION => {
                codec::decode_raw(encoding, &bytes[1..])
            }
            _ => codec::decode(&bytes),
        }
        .map_err(|source| CommError::Codec { rank, source }),
    }
}

/// Block `id` of `len` items cut into `cnt` blocks: `[lo, hi)`.
fn block(len: u128, id: u128, cnt: u128) -> (u128, u128) {
    let (base, extra) = (len / cnt, len % cnt);
    let lo = id * base + id.min(extra);
    let hi = lo + base + u128::from(id < extra);
    (lo, hi)
}

/// An integer range that [`Comm::partition`] (and `cg_for!`) can cut into blocks: `a..b` or
/// `a..=b` of any primitive integer type.
pub trait CgRange {
    /// The index type.
    type Item: CgIndex;
    /// The range as half-open `[start, end)` in `i128`.
    fn bounds(&self) -> (i128, i128);
}

/// A primitive integer usable as a `cg_for!` index.
pub trait CgIndex: Copy {
    /// Widens to `i128`.
    fn to_i128(self) -> i128;
    /// Narrows from `i128`; only called with values inside the original range.
    fn from_i128(v: i128) -> Self;
}

macro_rules! cg_index {
    ($($t:ty),*) => {$(
        impl CgIndex for $t {
            fn to_i128(self) -> i128 {
                self as i128
            }
            fn from_i128(v: i128) -> Self {
                v as $t
            }
        }
        impl CgRange for std::ops::Range<$t> {
            type Item = $t;
            fn bounds(&self) -> (i128, i128) {
                (self.start.to_i128(), self.end.to_i128())
            }
        }
        impl CgRange for std::ops::RangeInclusive<$t> {
            type Item = $t;
            fn bounds(&self) -> (i128, i128) {
                // An exhausted inclusive range keeps its ends; it is empty all the same.
                if self.is_empty() {
                    return (0, 0);
                }
                (self.start().to_i128(), self.end().to_i128() + 1)
            }
        }
    )*};
}

cg_index!(u8, u16, u32, u64, usize, i8, i16, i32, i64, isize);

/// One member's block of a range; see [`Comm::partition`].
#[derive(Debug, Clone)]
pub struct Partition<T> {
    next: i128,
    end: i128,
    _item: PhantomData<T>,
}

impl<T: CgIndex> Partition<T> {
    /// Block `id` of `range` cut into `cnt` blocks as [`Comm::partition`] cuts it, for groups
    /// of other kinds (such as RMPI's sub-groups).
    ///
    /// # Panics
    ///
    /// If `id >= cnt`.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(places::Partition::block(0..10u32, 1, 3).range(), 4..7);
    /// ```
    pub fn block<R: CgRange<Item = T>>(range: R, id: usize, cnt: usize) -> Self {
        assert!(id < cnt, "block {id} of {cnt}");
        let (start, end) = range.bounds();
        let len = (end - start).max(0) as u128;
        let (lo, hi) = block(len, id as u128, cnt as u128);
        Partition {
            next: start + lo as i128,
            end: start + hi as i128,
            _item: PhantomData,
        }
    }

    /// What is left of the block, as a range (the whole block before iterating): for code that
    /// works on the block as a slice.
    ///
    /// # Examples
    ///
    /// ```
    /// let g = places::Comm::local_group(3);
    /// assert_eq!(g[1].partition(0..10usize).range(), 4..7);
    /// ```
    pub fn range(&self) -> std::ops::Range<T> {
        T::from_i128(self.next)..T::from_i128(self.end.max(self.next))
    }
}

impl<T: CgIndex> Iterator for Partition<T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        (self.next < self.end).then(|| {
            let v = T::from_i128(self.next);
            self.next += 1;
            v
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = usize::try_from((self.end - self.next).max(0)).unwrap_or(usize::MAX);
        (n, Some(n))
    }
}

impl<T: CgIndex> ExactSizeIterator for Partition<T> {}

#[cfg(test)]
mod tests {
    use super::*;

    fn shares(len: u128, cnt: u128) -> Vec<(u128, u128)> {
        (0..cnt).map(|id| block(len, id, cnt)).collect()
    }

    #[test]
    fn blocks_follow_the_dissertation() {
        assert_eq!(shares(900, 3), [(0, 300), (300, 600), (600, 900)]);
    }

    #[test]
    fn uneven_and_short_ranges_cover_everything_once() {
        assert_eq!(shares(10, 3), [(0, 4), (4, 7), (7, 10)]);
        assert_eq!(shares(2, 3), [(0, 1), (1, 2), (2, 2)]);
        assert_eq!(shares(0, 4), [(0, 0); 4]);
        for len in 0..50 {
            for cnt in 1..9 {
                let s = shares(len, cnt);
                assert_eq!(s[0].0, 0);
                assert_eq!(s[s.len() - 1].1, len);
                for w in s.windows(2) {
                    assert_eq!(w[0].1, w[1].0, "contiguous");
                    let (a, b) = (w[0].1 - w[0].0, w[1].1 - w[1].0);
                    assert!(
                        a == b || a == b + 1,
                        "lengths differ by at most one, longer first"
                    );
                }
            }
        }
    }

    #[test]
    fn partition_handles_offsets_signs_and_inclusive_ranges() {
        let g = Comm::local_group(2);
        assert_eq!(
            g[1].partition(-5i32..5).collect::<Vec<_>>(),
            [0, 1, 2, 3, 4]
        );
        assert_eq!(
            g[0].partition(250u8..=255).collect::<Vec<_>>(),
            [250, 251, 252]
        );
        assert_eq!(
            g[1].partition(250u8..=255).collect::<Vec<_>>(),
            [253, 254, 255]
        );
        let (hi, lo) = (5usize, 3usize);
        assert_eq!(g[0].partition(hi..lo).count(), 0);
        assert_eq!(g[0].partition(0..7u64).len(), 4);
    }

    #[test]
    fn tags_keep_barrier_and_user_messages_apart() {
        let g = Comm::local_group(2);
        g[1].send(0, 7u8).unwrap();
        g[1].send_tagged(0, Tag::BARRIER, ()).unwrap();
        g[1].send(0, 8u8).unwrap();
        // The barrier message is taken past the queued user message, which then still arrives.
        g[0].recv_tagged::<()>(1, Tag::BARRIER).unwrap();
        assert_eq!(g[0].recv::<u8>(1).unwrap(), 7);
        assert_eq!(g[0].recv::<u8>(1).unwrap(), 8);
    }

    #[test]
    fn errors_name_ranks_and_types() {
        let mut g = Comm::local_group(2);
        assert!(matches!(
            g[0].send(5, 1u8),
            Err(CommError::Rank { rank: 5, cnt: 2 })
        ));
        g[1].send(0, 1u8).unwrap();
        let err = g[0].recv::<String>(1).unwrap_err();
        assert!(
            matches!(
                &err,
                CommError::TypeMismatch {
                    rank: 1,
                    found,
                    ..
                } if found == "u8"
            ),
            "{err}"
        );
        assert!(matches!(
            g[0].recv::<u8>(0),
            Err(CommError::EmptySelf { rank: 0 })
        ));
        g[0].send(0, 9u8).unwrap();
        assert_eq!(g[0].recv::<u8>(0).unwrap(), 9);
        drop(g.pop());
        assert!(matches!(
            g[0].recv::<u8>(1),
            Err(CommError::MemberGone { rank: 1 })
        ));
        assert!(matches!(
            g[0].try_barrier(),
            Err(CommError::MemberGone { rank: 1 })
        ));
    }

    #[test]
    fn an_invited_group_checks_types_by_name_and_keeps_tags_apart() {
        let mut g: Vec<Comm> = Comm::invitations(3)
            .into_iter()
            .map(Invitation::join)
            .collect();
        g[1].send(0, 7u64).unwrap();
        g[1].send_tagged(0, Tag::user(3), "tagged".to_string())
            .unwrap();
        let err = g[0].recv::<String>(1).unwrap_err();
        assert!(
            matches!(&err, CommError::TypeMismatch { rank: 1, expected, found }
                if *expected == std::any::type_name::<String>() && found == "u64"),
            "{err}"
        );
        assert_eq!(
            g[0].recv_tagged::<String>(1, Tag::user(3)).unwrap(),
            "tagged"
        );
        // Barriers between invited members are messages; all three must arrive.
        let last = g.pop().unwrap();
        let t = std::thread::spawn(move || (0..5).try_for_each(|_| last.try_barrier()));
        let mid = g.pop().unwrap();
        let t2 = std::thread::spawn(move || (0..5).try_for_each(|_| mid.try_barrier()));
        (0..5).try_for_each(|_| g[0].try_barrier()).unwrap();
        t.join().unwrap().unwrap();
        t2.join().unwrap().unwrap();
    }

    #[test]
    fn a_member_gone_before_a_shared_barrier_fails_every_waiter_at_once() {
        let mut g = Comm::local_group(3);
        let waiter = g.pop().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let h = std::thread::spawn(move || tx.send(waiter.try_barrier()).unwrap());
        drop(g.pop()); // member 1 is gone before the barrier
        let released = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("member 2 was released when member 1's Comm dropped");
        assert!(
            matches!(released, Err(CommError::MemberGone { rank: 1 })),
            "{released:?}"
        );
        assert!(matches!(
            g[0].try_barrier(),
            Err(CommError::MemberGone { rank: 1 })
        ));
        h.join().unwrap();
    }

    #[test]
    fn a_message_barrier_holds_every_member_until_all_arrive() {
        let handles: Vec<_> = Comm::linked_group(3)
            .into_iter()
            .map(|cg| std::thread::spawn(move || (0..20).try_for_each(|_| cg.try_barrier())))
            .collect();
        for h in handles {
            h.join().unwrap().unwrap();
        }
    }

    #[test]
    fn a_failed_message_barrier_at_member_0_releases_the_others_when_its_comm_drops() {
        let mut g = Comm::linked_group(3);
        let waiter = g.pop().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let h = std::thread::spawn(move || tx.send(waiter.try_barrier()).unwrap());
        drop(g.pop()); // member 1 is gone before the barrier
        let zero = g.pop().unwrap();
        assert!(matches!(
            zero.try_barrier(),
            Err(CommError::MemberGone { rank: 1 })
        ));
        // Member 2 is still held: member 0 did not release it.
        assert!(rx
            .recv_timeout(std::time::Duration::from_millis(100))
            .is_err());
        drop(zero);
        let released = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("member 2 was released when member 0's Comm dropped");
        assert!(
            matches!(released, Err(CommError::MemberGone { rank: 0 })),
            "{released:?}"
        );
        h.join().unwrap();
    }

    #[test]
    fn barrier_holds_every_member_until_all_arrive() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        let arrived = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = Comm::local_group(4)
            .into_iter()
            .map(|cg| {
                let arrived = arrived.clone();
                std::thread::spawn(move || {
                    for round in 1..=20 {
                        arrived.fetch_add(1, Ordering::SeqCst);
                        cg.barrier();
                        // Nobody passes round `round` before all four arrived in it.
                        assert!(arrived.load(Ordering::SeqCst) >= 4 * round);
                        cg.barrier();
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    }
}
