//! What may travel on a place channel.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// A value that may be sent on a place channel.
///
/// Every `Serialize + DeserializeOwned + Send + 'static` type is a message, so the same entry can
/// run in a local place (where the value is moved, never encoded) or on a remote node (where it is
/// encoded once by the [`codec`](crate::codec)). Place channels and shared vectors are messages too.
///
/// # Examples
///
/// ```
/// use places::Message;
///
/// #[derive(serde::Serialize, serde::Deserialize)]
/// enum Job { Compile(String), Done }
///
/// fn assert_message<T: Message>() {}
/// assert_message::<Job>();
/// assert_message::<(u32, Vec<f64>)>();
/// ```
pub trait Message: Serialize + DeserializeOwned + Send + 'static {}

impl<T: Serialize + DeserializeOwned + Send + 'static> Message for T {}

/// The value a place's entry returns, turned into the place's completion value (see
/// [`Place::wait`](crate::Place::wait)).
///
/// Implemented for `()` (completion value 0) and `i32` (the value itself).
pub trait Completion {
    /// The completion value.
    fn into_completion(self) -> i32;
}

impl Completion for () {
    fn into_completion(self) -> i32 {
        0
    }
}

impl Completion for i32 {
    fn into_completion(self) -> i32 {
        self
    }
}
