fn main() {
    cni_protocol::skel::main(&loopback::Loopback, "loopback")
}
