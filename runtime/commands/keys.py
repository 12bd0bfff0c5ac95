"""``edgesplit keys``: CurveZMQ key pairs for the secure device <-> peer link."""
from edgesplit.runtime.commands.output import print_json
from edgesplit.runtime.security.keys import generate_keypair, load_keys


def register(commands) -> None:
    parser = commands.add_parser(
        "keys",
        description="The link between device and peer is encrypted and authenticated with CurveZMQ. Each side "
                    "has a key pair: NAME.key (public: copy it to the other side) and NAME.key_secret (0600: "
                    "never leaves the machine). The peer accepts only the device keys in its --allowed-keys "
                    "folder; the device pins the peer's public key (peer.server_key).")
    sub = parser.add_subparsers(dest="keys_command", metavar="SUBCOMMAND")
    parser.set_defaults(handler=lambda args: (parser.print_help(), 2)[1])
    gen = sub.add_parser("generate", help="write NAME.key and NAME.key_secret",
                         description="Create a new key pair. Refuses to replace existing files unless --force.")
    gen.add_argument("name", metavar="NAME", help="file name stem, e.g. the host name ('jetson-07', 'peer')")
    gen.add_argument("--dir", default=".", help="folder to write into (created 0755 if missing; default .)")
    gen.add_argument("--force", action="store_true", help="replace an existing pair")
    gen.add_argument("--json", action="store_true", help="print paths and public key as JSON")
    gen.set_defaults(handler=run_generate)
    show = sub.add_parser("show", help="print the public key in a key file")
    show.add_argument("file", metavar="FILE", help="NAME.key or NAME.key_secret")
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=run_show)


def run_generate(args) -> int:
    public_path, secret_path = generate_keypair(args.dir, args.name, overwrite=args.force)
    public = load_keys(public_path).public.decode("ascii")
    if args.json:
        print_json({"public_key_file": str(public_path), "secret_key_file": str(secret_path), "public_key": public})
    else:
        print("public key %s\n  %s  (copy to the other side)\n  %s  (keep here, mode 0600)"
              % (public, public_path, secret_path))
    return 0


def run_show(args) -> int:
    pair = load_keys(args.file)
    if args.json:
        print_json({"file": args.file, "public_key": pair.public.decode("ascii"), "has_secret": pair.secret is not None})
    else:
        print(pair.public.decode("ascii"))
    return 0
