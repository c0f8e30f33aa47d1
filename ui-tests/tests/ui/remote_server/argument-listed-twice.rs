use places::{define_remote_server, Place};

define_remote_server! {
    bank {
        state accounts: Vec<u64> = vec![0; 8];
        rpc fn transfer(account: usize, account: usize, amount: u64) -> bool {
            accounts[account] += amount;
            true
        }
    }
}

fn main() {
    let server: Place<BankRequest, BankResponse> = Place::spawn(make_bank).unwrap();
    drop(server);
}
