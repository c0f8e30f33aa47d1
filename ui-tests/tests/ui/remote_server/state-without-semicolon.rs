use places::define_remote_server;

define_remote_server! {
    bank {
        state balance: u64 = 0
        rpc fn deposit(amount: u64) -> u64 {
            balance += amount;
            balance
        }
    }
}

fn main() {}
