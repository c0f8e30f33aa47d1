//! **RMPI for `places`: MPI-style collectives on communicator groups.**
//!
//! The seed's RMPI (Racket's `racket/place/distributed/rmpi`) gives each member of a group its
//! rank, the group's size, point-to-point `send`/`recv`, and collectives. Here the group is the
//! same [`Comm`] that `fork_join!` hands its members, whether they are threads of one process,
//! places on several nodes (linked directly, one hop), or processes started some other way; the
//! collectives are the methods of the [`Collectives`] trait, implemented for `Comm`:
//!
//! | RMPI (Racket) | here |
//! | --- | --- |
//! | `rmpi-id`, `rmpi-cnt` | [`Comm::id`], [`Comm::cnt`] |
//! | `rmpi-send`, `rmpi-recv` | [`Comm::send`], [`Comm::recv`] |
//! | `rmpi-barrier` | [`Comm::barrier`] |
//! | `rmpi-broadcast` | [`Collectives::broadcast`] |
//! | `rmpi-reduce`, `rmpi-allreduce` | [`Collectives::reduce`], [`Collectives::allreduce`] |
//! | `rmpi-partition` | [`partition`] |
//! | `rmpi-build-default-config`, `rmpi-launch` | [`rmpi_build_default_config`], [`rmpi_launch`] (see [`launch`]) |
//! | `rmpi-init`, `rmpi-finish` | [`rmpi_init`], [`rmpi_finish`] |
//! | beyond the seed | [`gather`](Collectives::gather), [`allgather`](Collectives::allgather), [`alltoall`](Collectives::alltoall), [`scatter`](Collectives::scatter), [`scan`](Collectives::scan), [`exscan`](Collectives::exscan), [`reduce_scatter`](Collectives::reduce_scatter), [`allreduce_elementwise`](Collectives::allreduce_elementwise) (blocks and a ring for large vectors), [`split`](Collectives::split) (sub-groups, [`SubComm`]), [`isend`](Collectives::isend), [`irecv`](Collectives::irecv) with [`RecvRequest::test`]/[`wait`](RecvRequest::wait), [`wait_any`], [`wait_all`] |
//!
//! Every member must call the same collectives in the same order, as in MPI. Results that only
//! one member gets are `Option`s (`Some` there, `None` elsewhere), never an untyped void.
//! Collective traffic travels under tags of its own ([`Tag::reserved`] from `0x1000`), so it
//! never mixes with a program's own `send`/`recv` messages.
//!
//! Reductions combine values in rank order (`op(op(v0, v1), v2)`, however the tree is shaped),
//! so `op` needs to be associative but not commutative. The [`op`] module has the usual
//! operators, including elementwise ones on vectors that add into the left operand's buffer.
//!
//! # Examples
//!
//! ```
//! use places::rmpi::{op, Collectives};
//!
//! let total = places::fork_join!(4, cg, [] -> (f64, Vec<i64>), {
//!     let mine = cg.id() as f64;
//!     let sum = cg.allreduce(op::sum, mine).unwrap();
//!     let v = cg.allreduce(op::elementwise_sum, vec![1i64, cg.id() as i64]).unwrap();
//!     (sum, v)
//! })
//! .unwrap();
//! assert_eq!(total[3], (6.0, vec![4, 6]));
//! ```

// `Comm` is named by the documentation's links.
#[allow(unused_imports)]
use places_core::Comm;
use places_core::{CommError, Message, Partition, Tag};

mod group;
pub mod launch;
pub mod map_reduce;
pub mod ndp;
pub mod op;
mod request;

pub use group::{Group, SubComm};
pub use request::{wait_all, wait_any, RecvRequest, SendRequest};

pub use launch::{
    rmpi_build_default_config, rmpi_finish, rmpi_init, rmpi_launch, rmpi_launch_all, RmpiChannel,
    RmpiConfig, RmpiNodeConfig, RmpiTypedChannel,
};

/// Why a collective failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RmpiError {
    /// A member is gone, a rank is out of range, or a message was of another type.
    #[error(transparent)]
    Comm(#[from] CommError),
    /// The root of a collective did not provide what it distributes.
    #[error("member {rank} is the root of `{collective}` and must pass `Some(..)`")]
    RootWithoutValue {
        /// The root.
        rank: usize,
        /// The collective.
        collective: &'static str,
    },
    /// An RMPI launch's configs are wrong (ranks missing or twice, no rank at all).
    #[error("RMPI launch: {0}")]
    Config(String),
    /// A node of an RMPI launch could not be started.
    #[error("RMPI launch: could not start a node on {host}: {source}")]
    Node {
        /// The host.
        host: String,
        /// What failed.
        #[source]
        source: places_net::NetError,
    },
    /// A rank of an RMPI launch failed: its place could not start or join the group, it
    /// panicked, it ended without `rmpi_finish`, or its node was lost.
    #[error("RMPI rank {rank}, on node {node}: {reason}")]
    Rank {
        /// The rank that failed first.
        rank: usize,
        /// Its node.
        node: String,
        /// What happened.
        reason: String,
    },
    /// A rank could not join its group or reach the program that launched it.
    #[error("rmpi_init: {0}")]
    Init(String),
    /// The members of an elementwise reduction passed vectors of different lengths.
    #[error("`allreduce_elementwise` at member {rank}: its vector has {len} elements, but the members' lengths range from {shortest} to {longest}")]
    LengthMismatch {
        /// The member.
        rank: usize,
        /// Its vector's length.
        len: usize,
        /// The shortest vector of the group.
        shortest: usize,
        /// The longest.
        longest: usize,
    },
    /// `scatter`'s or `alltoall`'s vector does not have one element per member.
    #[error("`{collective}` at member {rank} needs one element per member ({cnt}), got {len}")]
    WrongLength {
        /// The member.
        rank: usize,
        /// The collective.
        collective: &'static str,
        /// The group's size.
        cnt: usize,
        /// The length given.
        len: usize,
    },
}

/// The tags RMPI's collectives use: `Tag::reserved(0x1000 + k)`.
const fn tag(k: u32) -> Tag {
    Tag::reserved(0x1000 + k)
}
const BROADCAST: Tag = tag(0);
const REDUCE: Tag = tag(1);
const GATHER: Tag = tag(2);
const SCATTER: Tag = tag(3);
const ALLTOALL: Tag = tag(4);
const SCAN: Tag = tag(5);
const REDUCE_RESULT: Tag = tag(6);
const REDUCE_SCATTER: Tag = tag(7);
const RING: Tag = tag(8);

/// From this many bytes on, [`Collectives::allreduce_elementwise`] reduces a vector in
/// blocks (reduce-scatter, then a ring allgather) instead of whole along a tree.
pub const LARGE_VECTOR: usize = 64 << 10;

/// MPI's collective operations on a communicator group: a [`Comm`], or a sub-group of one
/// made by [`split`](Self::split).
///
/// Each is a sequence of point-to-point messages between the members: binomial trees for
/// broadcast and reduce (`log2(cnt)` rounds), direct exchanges for gather, scatter, all-to-all
/// and reduce-scatter, a chain for the scans, and for large vectors
/// ([`allreduce_elementwise`](Self::allreduce_elementwise)) a reduce-scatter followed by a
/// ring.
pub trait Collectives: Group {
    /// Every member gets the root's value (the root passes `Some(v)`; the others' argument is
    /// ignored, `None` is usual). Binomial tree from `root`.
    ///
    /// # Errors
    ///
    /// [`RmpiError::RootWithoutValue`] at a root that passes `None`; [`RmpiError::Comm`] when a
    /// member on the way is gone.
    fn broadcast<T: Message + Clone>(&self, root: usize, value: Option<T>) -> Result<T, RmpiError>;

    /// Combines every member's `value` with `op` in rank order; `Some(result)` at `dest`, `None`
    /// at the others.
    ///
    /// # Errors
    ///
    /// [`RmpiError::Comm`] when a member is gone or `dest` is not a rank.
    fn reduce<T: Message>(
        &self,
        dest: usize,
        op: impl Fn(T, T) -> T,
        value: T,
    ) -> Result<Option<T>, RmpiError>;

    /// [`reduce`](Self::reduce), with the result at every member.
    ///
    /// # Errors
    ///
    /// As [`reduce`](Self::reduce).
    fn allreduce<T: Message + Clone>(
        &self,
        op: impl Fn(T, T) -> T,
        value: T,
    ) -> Result<T, RmpiError>;

    /// Every member's `value`, in rank order, at `root` (`None` elsewhere).
    ///
    /// # Errors
    ///
    /// [`RmpiError::Comm`] when a member is gone.
    fn gather<T: Message>(&self, root: usize, value: T) -> Result<Option<Vec<T>>, RmpiError>;

    /// Every member's `value`, in rank order, at every member.
    ///
    /// # Errors
    ///
    /// As [`gather`](Self::gather).
    fn allgather<T: Message + Clone>(&self, value: T) -> Result<Vec<T>, RmpiError>;

    /// Element `i` of the root's vector goes to member `i` (the root passes `Some(v)` with one
    /// element per member).
    ///
    /// # Errors
    ///
    /// [`RmpiError::RootWithoutValue`], [`RmpiError::WrongLength`], [`RmpiError::Comm`].
    fn scatter<T: Message>(&self, root: usize, values: Option<Vec<T>>) -> Result<T, RmpiError>;

    /// Element `j` of member `i`'s vector goes to member `j`; member `j` gets, in rank order,
    /// what each member sent it.
    ///
    /// # Errors
    ///
    /// [`RmpiError::WrongLength`], [`RmpiError::Comm`].
    fn alltoall<T: Message>(&self, values: Vec<T>) -> Result<Vec<T>, RmpiError>;

    /// Inclusive prefix: member `i` gets `op` over the values of members `0..=i`.
    ///
    /// # Errors
    ///
    /// [`RmpiError::Comm`].
    fn scan<T: Message + Clone>(&self, op: impl Fn(T, T) -> T, value: T) -> Result<T, RmpiError>;

    /// Exclusive prefix: member `i` gets `op` over the values of members `0..i` (`None` at 0).
    ///
    /// # Errors
    ///
    /// [`RmpiError::Comm`].
    fn exscan<T: Message + Clone>(
        &self,
        op: impl Fn(T, T) -> T,
        value: T,
    ) -> Result<Option<T>, RmpiError>;

    /// MPI's `MPI_Reduce_scatter_block`: every member passes one block per member; member `i`
    /// gets block `i` of every member's vector, combined with `op` in rank order. Each member
    /// sends `cnt - 1` blocks and receives `cnt - 1`: the whole vector never travels whole.
    ///
    /// # Errors
    ///
    /// [`RmpiError::WrongLength`], [`RmpiError::Comm`].
    ///
    /// # Examples
    ///
    /// ```
    /// use places::rmpi::{op, Collectives};
    ///
    /// let got = places::fork_join!(3, cg, [] -> i64, {
    ///     // Member m passes [m, 10 m, 100 m]; member i gets the sum of everyone's block i.
    ///     let m = cg.id() as i64;
    ///     cg.reduce_scatter(op::sum, vec![m, 10 * m, 100 * m]).unwrap()
    /// })
    /// .unwrap();
    /// assert_eq!(got, [3, 30, 300]);
    /// ```
    fn reduce_scatter<T: Message>(
        &self,
        op: impl Fn(T, T) -> T,
        values: Vec<T>,
    ) -> Result<T, RmpiError>;

    /// [`allreduce`](Self::allreduce) of a vector with an elementwise `op` (such as
    /// [`op::elementwise_sum`]), which may therefore be applied to pieces of the vectors:
    /// from [`LARGE_VECTOR`] bytes on, in a group of more than one, each member reduces one
    /// block of the vector (a [`reduce_scatter`](Self::reduce_scatter)) and the blocks then go
    /// round a ring, so that every member sends and receives about twice the vector's size
    /// whatever the group's size, instead of `log2(cnt)` whole vectors along a tree. Smaller
    /// vectors take the tree. The members first agree on the length (a small allreduce of two
    /// numbers), so vectors of different lengths are an error at every member.
    ///
    /// # Errors
    ///
    /// [`RmpiError::LengthMismatch`] when the members' vectors differ in length;
    /// [`RmpiError::Comm`].
    ///
    /// # Examples
    ///
    /// ```
    /// use places::rmpi::{op, Collectives};
    ///
    /// let sums = places::fork_join!(2, cg, [] -> Vec<f64>, {
    ///     cg.allreduce_elementwise(op::elementwise_sum, vec![cg.id() as f64; 100_000]).unwrap()
    /// })
    /// .unwrap();
    /// assert!(sums.iter().all(|v| v.len() == 100_000 && v.iter().all(|&x| x == 1.0)));
    /// ```
    fn allreduce_elementwise<T: Message + Clone>(
        &self,
        op: impl Fn(Vec<T>, Vec<T>) -> Vec<T>,
        values: Vec<T>,
    ) -> Result<Vec<T>, RmpiError>;

    /// MPI's `MPI_Comm_split`: the members that pass the same `Some(color)` form a sub-group,
    /// numbered by `key` (ties by rank in this group); a member that passes `None` gets
    /// `None`. Every member of this group must call it. The sub-group's messages travel in a
    /// communication context of their own, so they never mix with this group's or another
    /// sub-group's.
    ///
    /// # Errors
    ///
    /// [`RmpiError::Comm`] when a member is gone; [`RmpiError::Config`] if the member has used
    /// up its 2^32 contexts.
    ///
    /// # Examples
    ///
    /// ```
    /// use places::rmpi::{op, Collectives};
    ///
    /// // Rows of a 2 x 3 grid of members, numbered right to left within a row.
    /// let rows = places::fork_join!(6, cg, [] -> (usize, Vec<usize>), {
    ///     let row = cg.split(Some((cg.id() / 3) as u32), -(cg.id() as i64)).unwrap().unwrap();
    ///     (row.id(), row.allgather(cg.id()).unwrap())
    /// })
    /// .unwrap();
    /// assert_eq!(rows[0], (2, vec![2, 1, 0]));
    /// assert_eq!(rows[5], (0, vec![5, 4, 3]));
    /// ```
    fn split(&self, color: Option<u32>, key: i64) -> Result<Option<SubComm<'_>>, RmpiError>;

    /// MPI's `MPI_Isend`: sends `value` to member `dest` (as [`Comm::send`] does) and returns
    /// its request, which is complete (see [`SendRequest`]).
    ///
    /// # Errors
    ///
    /// As [`Comm::send`].
    fn isend<T: Message>(&self, dest: usize, value: T) -> Result<SendRequest, RmpiError>;

    /// MPI's `MPI_Irecv`: starts a receive of the next message from member `src` (of those
    /// [`Comm::send`] sends); [`RecvRequest::test`] polls it, [`RecvRequest::wait`] waits for
    /// it, [`wait_any`] and [`wait_all`] wait for several.
    ///
    /// # Examples
    ///
    /// ```
    /// use places::rmpi::{wait_any, Collectives};
    ///
    /// let got = places::fork_join!(3, cg, [] -> Vec<String>, {
    ///     if cg.id() == 0 {
    ///         // Whichever of 1 and 2 sends first is taken first.
    ///         let mut pending = vec![cg.irecv::<String>(1), cg.irecv(2)];
    ///         let mut got = Vec::new();
    ///         while !pending.is_empty() {
    ///             let i = wait_any(&mut pending).unwrap();
    ///             got.push(pending.swap_remove(i).wait().unwrap());
    ///         }
    ///         got.sort();
    ///         got
    ///     } else {
    ///         cg.isend(0, format!("from {}", cg.id())).unwrap().wait();
    ///         Vec::new()
    ///     }
    /// })
    /// .unwrap();
    /// assert_eq!(got[0], ["from 1", "from 2"]);
    /// ```
    fn irecv<T: Message>(&self, src: usize) -> RecvRequest<'_, Self, T>
    where
        Self: Sized;

    /// [`irecv`](Self::irecv) of the messages of `tag`.
    fn irecv_tagged<T: Message>(&self, src: usize, tag: Tag) -> RecvRequest<'_, Self, T>
    where
        Self: Sized;
}

/// Sends element `r` of `values` (one per member) to member `r` under `tag`; returns this
/// member's own element.
fn distribute<G: Group + ?Sized, T: Message>(
    comm: &G,
    collective: &'static str,
    tag: Tag,
    values: Vec<T>,
) -> Result<T, RmpiError> {
    let (id, cnt) = (comm.id(), comm.cnt());
    let wrong = |len| RmpiError::WrongLength {
        rank: id,
        collective,
        cnt,
        len,
    };
    if values.len() != cnt {
        return Err(wrong(values.len()));
    }
    let mut own = None;
    for (r, v) in values.into_iter().enumerate() {
        if r == id {
            own = Some(v);
        } else {
            comm.send_tagged(r, tag, v)?;
        }
    }
    // `id < cnt == values.len()`, so the loop met this member's element.
    own.ok_or(wrong(0))
}

/// `rank`'s position counted from `root`.
fn relative(rank: usize, root: usize, cnt: usize) -> usize {
    (rank + cnt - root) % cnt
}

fn check_rank<G: Group + ?Sized>(comm: &G, rank: usize) -> Result<(), RmpiError> {
    if rank < comm.cnt() {
        Ok(())
    } else {
        Err(CommError::Rank {
            rank,
            cnt: comm.cnt(),
        }
        .into())
    }
}

/// Every member's element for this member, in rank order (all-to-all under `tag`).
fn exchange<G: Group + ?Sized, T: Message>(
    comm: &G,
    collective: &'static str,
    tag: Tag,
    values: Vec<T>,
) -> Result<Vec<T>, RmpiError> {
    let (id, cnt) = (comm.id(), comm.cnt());
    let mut own = Some(distribute(comm, collective, tag, values)?);
    let mut out = Vec::with_capacity(cnt);
    for r in 0..cnt {
        if r == id {
            out.extend(own.take());
        } else {
            out.push(comm.recv_tagged(r, tag)?);
        }
    }
    Ok(out)
}

impl<G: Group> Collectives for G {
    fn broadcast<T: Message + Clone>(&self, root: usize, value: Option<T>) -> Result<T, RmpiError> {
        check_rank(self, root)?;
        let (id, cnt) = (self.id(), self.cnt());
        let rel = relative(id, root, cnt);
        let absolute = |r: usize| (r + root) % cnt;
        let mut mask = 1;
        let value = if rel == 0 {
            value.ok_or(RmpiError::RootWithoutValue {
                rank: id,
                collective: "broadcast",
            })?
        } else {
            // The parent is `rel` with its lowest set bit cleared.
            loop {
                if rel & mask != 0 {
                    break self.recv_tagged(absolute(rel - mask), BROADCAST)?;
                }
                mask <<= 1;
            }
        };
        // Children: `rel + m` for every power of two `m` below this member's lowest set bit.
        let mut m = if rel == 0 {
            cnt.next_power_of_two()
        } else {
            mask
        };
        m >>= 1;
        while m > 0 {
            if rel + m < cnt {
                self.send_tagged(absolute(rel + m), BROADCAST, value.clone())?;
            }
            m >>= 1;
        }
        Ok(value)
    }

    fn reduce<T: Message>(
        &self,
        dest: usize,
        op: impl Fn(T, T) -> T,
        value: T,
    ) -> Result<Option<T>, RmpiError> {
        check_rank(self, dest)?;
        let (id, cnt) = (self.id(), self.cnt());
        // A binomial tree towards member 0 keeps rank order: at each step a member holds the
        // combination of `[id, id + mask)` and takes in `[id + mask, id + 2 mask)`.
        let mut acc = Some(value);
        let mut mask = 1;
        while mask < cnt {
            if id & mask == 0 {
                let src = id | mask;
                if src < cnt {
                    let theirs: T = self.recv_tagged(src, REDUCE)?;
                    acc = acc.map(|mine| op(mine, theirs));
                }
            } else {
                if let Some(v) = acc.take() {
                    self.send_tagged(id & !mask, REDUCE, v)?;
                }
                break;
            }
            mask <<= 1;
        }
        // Member 0 holds the result; it moves to `dest` if that is another member.
        match (id, dest) {
            (0, 0) => Ok(acc),
            (0, _) => {
                if let Some(v) = acc {
                    self.send_tagged(dest, REDUCE_RESULT, v)?;
                }
                Ok(None)
            }
            (i, d) if i == d => Ok(Some(self.recv_tagged(0, REDUCE_RESULT)?)),
            _ => Ok(None),
        }
    }

    fn allreduce<T: Message + Clone>(
        &self,
        op: impl Fn(T, T) -> T,
        value: T,
    ) -> Result<T, RmpiError> {
        let at_zero = self.reduce(0, op, value)?;
        self.broadcast(0, at_zero)
    }

    fn gather<T: Message>(&self, root: usize, value: T) -> Result<Option<Vec<T>>, RmpiError> {
        check_rank(self, root)?;
        if self.id() != root {
            self.send_tagged(root, GATHER, value)?;
            return Ok(None);
        }
        let mut mine = Some(value);
        let mut all = Vec::with_capacity(self.cnt());
        for r in 0..self.cnt() {
            match mine.take_if(|_| r == root) {
                Some(v) => all.push(v),
                None => all.push(self.recv_tagged(r, GATHER)?),
            }
        }
        Ok(Some(all))
    }

    fn allgather<T: Message + Clone>(&self, value: T) -> Result<Vec<T>, RmpiError> {
        let at_zero = self.gather(0, value)?;
        self.broadcast(0, at_zero)
    }

    fn scatter<T: Message>(&self, root: usize, values: Option<Vec<T>>) -> Result<T, RmpiError> {
        check_rank(self, root)?;
        let id = self.id();
        if id != root {
            return Ok(self.recv_tagged(root, SCATTER)?);
        }
        let values = values.ok_or(RmpiError::RootWithoutValue {
            rank: id,
            collective: "scatter",
        })?;
        distribute(self, "scatter", SCATTER, values)
    }

    fn alltoall<T: Message>(&self, values: Vec<T>) -> Result<Vec<T>, RmpiError> {
        exchange(self, "alltoall", ALLTOALL, values)
    }

    fn scan<T: Message + Clone>(&self, op: impl Fn(T, T) -> T, value: T) -> Result<T, RmpiError> {
        let (id, cnt) = (self.id(), self.cnt());
        let acc = if id == 0 {
            value
        } else {
            let before: T = self.recv_tagged(id - 1, SCAN)?;
            op(before, value)
        };
        if id + 1 < cnt {
            self.send_tagged(id + 1, SCAN, acc.clone())?;
        }
        Ok(acc)
    }

    fn exscan<T: Message + Clone>(
        &self,
        op: impl Fn(T, T) -> T,
        value: T,
    ) -> Result<Option<T>, RmpiError> {
        let (id, cnt) = (self.id(), self.cnt());
        let before: Option<T> = if id == 0 {
            None
        } else {
            Some(self.recv_tagged(id - 1, SCAN)?)
        };
        if id + 1 < cnt {
            let through = match before.clone() {
                None => value,
                Some(b) => op(b, value),
            };
            self.send_tagged(id + 1, SCAN, through)?;
        }
        Ok(before)
    }

    fn reduce_scatter<T: Message>(
        &self,
        op: impl Fn(T, T) -> T,
        values: Vec<T>,
    ) -> Result<T, RmpiError> {
        let blocks = exchange(self, "reduce_scatter", REDUCE_SCATTER, values)?;
        let mut blocks = blocks.into_iter();
        // A group has at least this member, so there is a first block.
        let first = blocks.next().ok_or(RmpiError::WrongLength {
            rank: self.id(),
            collective: "reduce_scatter",
            cnt: self.cnt(),
            len: 0,
        })?;
        Ok(blocks.fold(first, op))
    }

    fn allreduce_elementwise<T: Message + Clone>(
        &self,
        op: impl Fn(Vec<T>, Vec<T>) -> Vec<T>,
        values: Vec<T>,
    ) -> Result<Vec<T>, RmpiError> {
        let (id, cnt) = (self.id(), self.cnt());
        let len = values.len();
        // Every member must take the same path: they agree on the length first (one small
        // allreduce), and differing lengths are an error at every member, not a hang.
        let (shortest, longest) = self.allreduce(
            |(a, b): (usize, usize), (c, d)| (a.min(c), b.max(d)),
            (len, len),
        )?;
        if shortest != longest {
            return Err(RmpiError::LengthMismatch {
                rank: id,
                len,
                shortest,
                longest,
            });
        }
        let bytes = len.saturating_mul(std::mem::size_of::<T>().max(1));
        if cnt == 1 || len < cnt || bytes < LARGE_VECTOR {
            return self.allreduce(op, values);
        }
        // Block b of every member's vector is reduced at member b...
        let blocks: Vec<Vec<T>> = (0..cnt)
            .map(|b| values[Partition::block(0..len, b, cnt).range()].to_vec())
            .collect();
        drop(values);
        let mine = self.reduce_scatter(&op, blocks)?;
        // ...and the reduced blocks go round the ring: at step s each member passes on the
        // block it got at step s - 1 (its own at step 0).
        let (next, prev) = ((id + 1) % cnt, (id + cnt - 1) % cnt);
        let mut parts: Vec<Option<Vec<T>>> = (0..cnt).map(|_| None).collect();
        parts[id] = Some(mine);
        for step in 0..cnt - 1 {
            let out = (id + cnt - step) % cnt;
            let passing = parts[out].clone().unwrap_or_default();
            self.send_tagged(next, RING, passing)?;
            parts[(id + cnt - step - 1) % cnt] = Some(self.recv_tagged(prev, RING)?);
        }
        let mut whole = Vec::with_capacity(len);
        for part in parts {
            whole.extend(part.unwrap_or_default());
        }
        Ok(whole)
    }

    fn isend<T: Message>(&self, dest: usize, value: T) -> Result<SendRequest, RmpiError> {
        self.send_tagged(dest, Tag::USER, value)?;
        Ok(SendRequest(()))
    }

    fn irecv<T: Message>(&self, src: usize) -> RecvRequest<'_, Self, T> {
        self.irecv_tagged(src, Tag::USER)
    }

    fn irecv_tagged<T: Message>(&self, src: usize, tag: Tag) -> RecvRequest<'_, Self, T> {
        RecvRequest {
            group: self,
            src,
            tag,
            got: None,
        }
    }

    fn split(&self, color: Option<u32>, key: i64) -> Result<Option<SubComm<'_>>, RmpiError> {
        let world = self.world();
        let all = self.allgather((color, key, world.free_context()))?;
        // A context that no member of this group uses yet, the same at every member.
        let context = all.iter().map(|&(_, _, free)| free).max().unwrap_or(1);
        let after = context
            .checked_add(1)
            .ok_or_else(|| RmpiError::Config("a member used up its 2^32 contexts".into()))?;
        world.reserve_contexts(after);
        let Some(color) = color else {
            return Ok(None);
        };
        let mut members: Vec<(i64, usize)> = all
            .iter()
            .enumerate()
            .filter(|(_, &(c, _, _))| c == Some(color))
            .map(|(rank, &(_, key, _))| (key, rank))
            .collect();
        members.sort_unstable();
        let me = self.id();
        let id = members
            .iter()
            .position(|&(_, rank)| rank == me)
            .unwrap_or_default();
        let ranks = members
            .iter()
            .map(|&(_, rank)| self.world_rank(rank))
            .collect();
        Ok(Some(SubComm {
            world,
            ranks,
            id,
            context,
        }))
    }
}

/// This member's block of `n` items, as `(offset, len)` (RMPI's `rmpi-partition`): the first
/// `n % cnt` members get one item more than the others.
///
/// # Examples
///
/// ```
/// let g = places::Comm::local_group(3);
/// let blocks: Vec<_> = g.iter().map(|cg| places::rmpi::partition(cg, 10)).collect();
/// assert_eq!(blocks, [(0, 4), (4, 3), (7, 3)]);
/// ```
pub fn partition<G: Group + ?Sized>(comm: &G, n: usize) -> (usize, usize) {
    let r = Partition::block(0..n, comm.id(), comm.cnt()).range();
    (r.start, r.end - r.start)
}
