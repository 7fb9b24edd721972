//! Asks the linker for 1 GiB of initial linear memory: instantiating the
//! component allocates it all, before any of its code runs.

fn main() {
    println!("cargo:rustc-link-arg-cdylib=--initial-memory=1073741824");
}
