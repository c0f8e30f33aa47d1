//! The tuple server of the guide chapter (seed 002, Figure 2): a named RPC server holding a
//! string-keyed table.

use std::collections::HashMap;

places::define_named_remote_server! {
    pub tuple_server {
        state h: HashMap<String, u64> = HashMap::new();
        rpc fn set(k: String, v: u64) -> u64 {
            h.insert(k, v);
            v
        }
        rpc fn get(k: String) -> Option<u64> {
            h.get(&k).copied()
        }
        cast fn hello() {
            println!("Hello from define-cast");
        }
    }
}

/// Racket's way of showing a lookup: the value, or `#f`.
pub fn show(v: Option<u64>) -> String {
    v.map_or_else(|| "#f".to_owned(), |v| v.to_string())
}
