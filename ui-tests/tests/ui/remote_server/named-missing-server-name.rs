use places::define_named_remote_server;

define_named_remote_server! {
    {
        state tuples: Vec<(String, String)> = Vec::new();
        rpc fn set(k: String, v: String) {
            tuples.push((k, v));
        }
        rpc fn get(k: String) -> Option<String> {
            tuples.iter().find(|(key, _)| *key == k).map(|(_, v)| v.clone())
        }
    }
}

fn main() {}
