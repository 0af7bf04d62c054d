"""Train E-NER: SpanNER with an evidential head (Dirichlet evidence per span) and the
uncertainty-aware loss of the E-NER paper (models/losses.py: ener_loss).

    python train_ener.py --data_dir ../shared/data/conll03 --encoder glove --model_save_dir M
"""
from train_spanner import build_parser, main, str2bool
from models.losses import ETRANS


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


if __name__ == "__main__":
    main(model_type="ener", parser=ener_parser(), extra_config=ener_config)
