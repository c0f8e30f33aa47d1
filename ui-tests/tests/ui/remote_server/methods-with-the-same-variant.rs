use places::{define_remote_server, Place};

define_remote_server! {
    bank {
        state balance: u64 = 0;
        rpc fn top_up(amount: u64) -> u64 {
            balance += amount;
            balance
        }
        // `top_up` and `topUp` are both the request variant `TopUp`.
        rpc fn topUp(amount: u32) -> u64 {
            balance += u64::from(amount);
            balance
        }
    }
}

fn main() {
    let server: Place<BankRequest, BankResponse> = Place::spawn(make_bank).unwrap();
    drop(server);
}
