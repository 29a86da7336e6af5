"""A stand-in for the official TransFG train.py (github.com/TACJu/TransFG): the same command line
and log format, and the same portability breaks (apex import, scipy.misc.imread, np.float,
dist.barrier() in validation), but no model: it reads the dataset the way the official CUB reader
does and logs accuracies that are a known function of the step, so a test can check what
transfg/official.py makes of it. It writes its parsed arguments to OUTPUT_DIR/args.json.

Extra behaviour for tests: STANDIN_FAIL_AT=<step> exits with status 1 at that step.
"""

import argparse
import json
import logging
import os
import sys

import numpy as np
import scipy.misc
import torch.distributed as dist
from apex import amp  # noqa: F401  (the official code imports it whether or not fp16 is on)
from apex.parallel import DistributedDataParallel  # noqa: F401

logger = logging.getLogger(__name__)


def accuracy_at(step):
    return ((step * 37) % 100) / 100


def read_cub_test_images(root):
    with open(os.path.join(root, "images.txt")) as f:
        names = [line.split()[-1] for line in f]
    with open(os.path.join(root, "train_test_split.txt")) as f:
        is_train = [int(line.split()[-1]) for line in f]
    test = [n for n, t in zip(names, is_train) if not t]
    first = scipy.misc.imread(os.path.join(root, "images", test[0]))
    return len(test), np.asarray(first.shape, dtype=np.float)


def valid(step):
    dist.barrier()  # as the official code: crashes when not distributed
    logger.info("***** Running Validation *****")
    logger.info("\n")
    logger.info("Validation Results")
    logger.info("Global Steps: %d" % step)
    logger.info("Valid Loss: %2.5f" % 1.0)
    logger.info("Valid Accuracy: %2.5f" % accuracy_at(step))
    return accuracy_at(step)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--name", required=True)
    p.add_argument("--dataset", choices=["CUB_200_2011", "car", "dog", "nabirds", "INat2017"])
    p.add_argument("--data_root", type=str)
    p.add_argument("--model_type", default="ViT-B_16")
    p.add_argument("--pretrained_dir", type=str)
    p.add_argument("--pretrained_model", type=str, default=None)
    p.add_argument("--output_dir", default="./output", type=str)
    p.add_argument("--img_size", default=448, type=int)
    p.add_argument("--train_batch_size", default=16, type=int)
    p.add_argument("--eval_batch_size", default=8, type=int)
    p.add_argument("--eval_every", default=100, type=int)
    p.add_argument("--learning_rate", default=3e-2, type=float)
    p.add_argument("--weight_decay", default=0, type=float)
    p.add_argument("--num_steps", default=10000, type=int)
    p.add_argument("--decay_type", choices=["cosine", "linear"], default="cosine")
    p.add_argument("--warmup_steps", default=500, type=int)
    p.add_argument("--max_grad_norm", default=1.0, type=float)
    p.add_argument("--local_rank", type=int, default=-1)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--gradient_accumulation_steps", type=int, default=1)
    p.add_argument("--fp16", action="store_true")
    p.add_argument("--fp16_opt_level", type=str, default="O2")
    p.add_argument("--loss_scale", type=float, default=0)
    p.add_argument("--smoothing_value", type=float, default=0.0)
    p.add_argument("--split", type=str, default="non-overlap")
    p.add_argument("--slide_step", type=int, default=12)
    args = p.parse_args()
    args.data_root = "{}/{}".format(args.data_root, args.dataset)
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s",
                        datefmt="%m/%d/%Y %H:%M:%S", level=logging.INFO)
    if args.local_rank != -1:
        dist.init_process_group(backend="gloo")  # the official code: nccl
    test_count, _ = read_cub_test_images(args.data_root)
    os.makedirs(args.output_dir, exist_ok=True)
    with open(os.path.join(args.output_dir, "args.json"), "w") as f:
        json.dump({**vars(args), "test_count": test_count,
                   "world_size": dist.get_world_size()}, f)
    fail_at = int(os.environ.get("STANDIN_FAIL_AT", "0"))
    best = 0
    for step in range(1, args.num_steps + 1):
        sys.stderr.write("\rTraining (%d / %d Steps) (loss=%2.5f)" % (step, args.num_steps,
                                                                     5.0 / step))
        sys.stderr.flush()
        if step == fail_at:
            raise SystemExit(1)
        if step % args.eval_every == 0:
            accuracy = valid(step)
            best = max(best, accuracy)
            logger.info("best accuracy so far: %f" % best)
    logger.info("Best Accuracy: \t%f" % best)
    logger.info("End Training!")
    logger.info("Total Training Time: \t%f" % 0.001)


if __name__ == "__main__":
    main()
