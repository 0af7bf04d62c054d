"""Train E-NER: SpanNER with an evidential head (Dirichlet evidence per span) and the
uncertainty-aware loss of the E-NER paper (models/losses.py: ener_loss).

    python train_ener.py --data_dir ../shared/data/conll03 --encoder glove --model_save_dir M
"""
from models.losses import ETRANS
from train_spanner import build_parser, str2bool
from train_spanner import main as train_main


def ener_parser():
    p = build_parser(__doc__)
    a = p.add_argument
    a("--etrans_func", choices=ETRANS, default="exp", help="evidence = f(span scores)")
    a("--annealing_step", type=float, default=100.0, help="KL and uncertainty terms weighted by min(1, epoch / this)")
    a("--with_iw", type=str2bool, default=True, help="uncertainty-weighted digamma term (weight 1 - belief)")
    a("--with_kl", type=str2bool, default=True, help="KL to the uniform Dirichlet on non-target evidence")
    a("--with_uc", type=str2bool, default=True, help="uncertainty-guided term: wrong spans pushed to high uncertainty")
    return p


def ener_config(args):
    return {k: getattr(args, k) for k in ("etrans_func", "annealing_step", "with_iw", "with_kl", "with_uc")}


def main(argv=None):
    return train_main(argv, "ener", ener_parser(), ener_config)


if __name__ == "__main__":
    main()
