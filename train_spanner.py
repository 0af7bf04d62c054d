"""Train SpanNER (softmax span classifier); `train_ener.py` trains E-NER the same way.

    python train_spanner.py --data_dir ../shared/data/conll03 --encoder glove --model_save_dir M
    python train_spanner.py --data_dir DATA --bert_config_dir bert-base-uncased --model_save_dir M
"""
from inference.local.calibrate import calibrate_checkpoint
from inference.local.predict import dev_counter
from models.config import ModelConfig, ModelType
from models.profiles import parse_train_args
from models.training import TrainSettings, build_parser, configure_logging, train
from utils.cli import run_cli


def main(argv=None):
    configure_logging()
    args = parse_train_args(build_parser(__doc__), argv)
    config = ModelConfig.from_args(args, model_type=ModelType.SPANNER, train_args=vars(args))
    return run_cli(train, TrainSettings.from_args(args), config, dev_counter, calibrate_checkpoint)


if __name__ == "__main__":
    main()
