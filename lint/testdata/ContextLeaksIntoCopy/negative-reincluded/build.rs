fn main() { println!("cargo:rerun-if-changed=.git/HEAD"); }
