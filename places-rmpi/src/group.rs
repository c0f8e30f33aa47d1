//! What the collectives run on: a [`Group`] is a [`Comm`] or a sub-group of one made by
//! [`split`](crate::Collectives::split) ([`SubComm`]).

use places_core::{Comm, CommError, Message, Partition, Tag};

/// The point-to-point operations the [`Collectives`](crate::Collectives) are built from,
/// implemented by [`Comm`] and [`SubComm`].
pub trait Group {
    /// This member's rank in the group, in `0..cnt()`.
    fn id(&self) -> usize;

    /// The number of members.
    fn cnt(&self) -> usize;

    /// Sends `value` to member `dest` under `tag`.
    ///
    /// # Errors
    ///
    /// As [`Comm::send_tagged`].
    fn send_tagged<T: Message>(&self, dest: usize, tag: Tag, value: T) -> Result<(), CommError>;

    /// Waits for the first message of `tag` from member `src`.
    ///
    /// # Errors
    ///
    /// As [`Comm::recv_tagged`].
    fn recv_tagged<T: Message>(&self, src: usize, tag: Tag) -> Result<T, CommError>;

    /// The first message of `tag` from member `src` if it has arrived, without waiting.
    ///
    /// # Errors
    ///
    /// As [`Comm::try_recv_tagged`].
    fn try_recv_tagged<T: Message>(&self, src: usize, tag: Tag) -> Result<Option<T>, CommError>;

    /// Waits until every member has called it.
    ///
    /// # Errors
    ///
    /// As [`Comm::try_barrier`].
    fn try_barrier(&self) -> Result<(), CommError>;

    /// The whole group this one is part of (itself for a [`Comm`]).
    fn world(&self) -> &Comm;

    /// The rank in [`world`](Self::world) of this group's member `rank`.
    fn world_rank(&self, rank: usize) -> usize;
}

impl Group for Comm {
    fn id(&self) -> usize {
        Comm::id(self)
    }

    fn cnt(&self) -> usize {
        Comm::cnt(self)
    }

    fn send_tagged<T: Message>(&self, dest: usize, tag: Tag, value: T) -> Result<(), CommError> {
        Comm::send_tagged(self, dest, tag, value)
    }

    fn recv_tagged<T: Message>(&self, src: usize, tag: Tag) -> Result<T, CommError> {
        Comm::recv_tagged(self, src, tag)
    }

    fn try_recv_tagged<T: Message>(&self, src: usize, tag: Tag) -> Result<Option<T>, CommError> {
        Comm::try_recv_tagged(self, src, tag)
    }

    fn try_barrier(&self) -> Result<(), CommError> {
        Comm::try_barrier(self)
    }

    fn world(&self) -> &Comm {
        self
    }

    fn world_rank(&self, rank: usize) -> usize {
        rank
    }
}

/// A sub-group of a [`Comm`] (MPI's communicator from `MPI_Comm_split`), made by
/// [`split`](crate::Collectives::split): some of the group's members, renumbered `0..cnt()`.
///
/// Its messages travel over the whole group's links in a communication context of their own
/// ([`Tag::in_context`]), so they never mix with the whole group's or another sub-group's;
/// every collective works on it, and it can be split again. It borrows the member's `Comm`,
/// so it lives on the thread that plays the member.
///
/// Errors about a member's messages (gone, or a message of another type) name it by its rank
/// in the whole group (a `MemberGone` for world rank 5, not rank 2 of the sub-group), because
/// that is the process to look at; errors about a call's arguments (a rank out of range, a
/// root without a value, a wrong length) use sub-group ranks, as the call did.
///
/// # Examples
///
/// ```
/// use places::rmpi::{op, Collectives};
///
/// // Even and odd members, each group adding its members' world ranks.
/// let sums = places::fork_join!(5, cg, [] -> (usize, usize, usize), {
///     let sub = cg.split(Some(cg.id() as u32 % 2), 0).unwrap().unwrap();
///     let sum = sub.allreduce(op::sum, cg.id()).unwrap();
///     (sub.id(), sub.cnt(), sum)
/// })
/// .unwrap();
/// assert_eq!(sums, [(0, 3, 6), (0, 2, 4), (1, 3, 6), (1, 2, 4), (2, 3, 6)]);
/// ```
pub struct SubComm<'a> {
    pub(crate) world: &'a Comm,
    /// `ranks[r]` is member `r`'s rank in `world`.
    pub(crate) ranks: Vec<usize>,
    pub(crate) id: usize,
    pub(crate) context: u32,
}

impl SubComm<'_> {
    /// This member's rank in the sub-group.
    pub fn id(&self) -> usize {
        self.id
    }

    /// The number of members of the sub-group.
    pub fn cnt(&self) -> usize {
        self.ranks.len()
    }

    /// The world ranks of the sub-group's members, in sub-group order.
    pub fn world_ranks(&self) -> &[usize] {
        &self.ranks
    }

    /// The communication context its messages travel in.
    pub fn context(&self) -> u32 {
        self.context
    }

    /// Sends `value` to sub-group member `dest`.
    ///
    /// # Errors
    ///
    /// [`CommError::Rank`] for a rank outside the sub-group, and as [`Comm::send`].
    pub fn send<T: Message>(&self, dest: usize, value: T) -> Result<(), CommError> {
        Group::send_tagged(self, dest, Tag::USER, value)
    }

    /// Waits for the next message from sub-group member `src`.
    ///
    /// # Errors
    ///
    /// [`CommError::Rank`] for a rank outside the sub-group, and as [`Comm::recv`].
    pub fn recv<T: Message>(&self, src: usize) -> Result<T, CommError> {
        Group::recv_tagged(self, src, Tag::USER)
    }

    /// Waits until every member of the sub-group has called it.
    ///
    /// # Panics
    ///
    /// If a member is gone (as [`Comm::barrier`]); [`try_barrier`](Group::try_barrier)
    /// returns the error instead.
    pub fn barrier(&self) {
        if let Err(e) = Group::try_barrier(self) {
            panic!("barrier of sub-group member {} failed: {e}", self.id);
        }
    }

    /// This member's share of `range`, split as [`Comm::partition`] splits it.
    pub fn partition<R: places_core::CgRange>(&self, range: R) -> Partition<R::Item> {
        Partition::block(range, self.id, self.cnt())
    }

    fn world_of(&self, rank: usize) -> Result<usize, CommError> {
        self.ranks.get(rank).copied().ok_or(CommError::Rank {
            rank,
            cnt: self.ranks.len(),
        })
    }
}

impl Group for SubComm<'_> {
    fn id(&self) -> usize {
        self.id
    }

    fn cnt(&self) -> usize {
        self.ranks.len()
    }

    fn send_tagged<T: Message>(&self, dest: usize, tag: Tag, value: T) -> Result<(), CommError> {
        let to = self.world_of(dest)?;
        self.world
            .send_tagged(to, tag.in_context(self.context), value)
    }

    fn recv_tagged<T: Message>(&self, src: usize, tag: Tag) -> Result<T, CommError> {
        let from = self.world_of(src)?;
        self.world.recv_tagged(from, tag.in_context(self.context))
    }

    fn try_recv_tagged<T: Message>(&self, src: usize, tag: Tag) -> Result<Option<T>, CommError> {
        let from = self.world_of(src)?;
        self.world
            .try_recv_tagged(from, tag.in_context(self.context))
    }

    fn try_barrier(&self) -> Result<(), CommError> {
        // Gather at member 0, then release, in this sub-group's context.
        if self.id == 0 {
            for m in 1..self.cnt() {
                Group::recv_tagged::<()>(self, m, Tag::BARRIER)?;
            }
            for m in 1..self.cnt() {
                Group::send_tagged(self, m, Tag::BARRIER, ())?;
            }
        } else {
            Group::send_tagged(self, 0, Tag::BARRIER, ())?;
            Group::recv_tagged::<()>(self, 0, Tag::BARRIER)?;
        }
        Ok(())
    }

    fn world(&self) -> &Comm {
        self.world
    }

    fn world_rank(&self, rank: usize) -> usize {
        self.ranks[rank]
    }
}

impl std::fmt::Debug for SubComm<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubComm")
            .field("id", &self.id)
            .field("cnt", &self.ranks.len())
            .field("world_ranks", &self.ranks)
            .field("context", &self.context)
            .finish()
    }
}
