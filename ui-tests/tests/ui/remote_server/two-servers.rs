use places::define_remote_server;

define_remote_server! {
    bank {
        state balance: u64 = 0;
        rpc fn deposit(amount: u64) -> u64 {
            balance += amount;
            balance
        }
    }
    audit {
        state seen: u32 = 0;
        cast fn record() {
            seen += 1;
        }
    }
}

fn main() {}
