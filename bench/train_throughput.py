"""Training throughput (images/s): data loading alone, model step alone, and the full loop, same config.

Prints one JSON object. The loop should reach >= 90 % of the model-step rate (the loader never starves the model).
Also measures the model step with bf16 autocast and without channels_last, to justify the defaults.
``--modality fused`` measures a photo + text model (``--fusion``): the listing text is tokenised in the loader
workers, so the loop/step ratio says whether text encoding starves the image loop.
Usage: uv run python bench/train_throughput.py [--steps 12] [--image-size 128] [--workers 1] [--modality fused]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--p", type=int, default=16)
    parser.add_argument("--k", type=int, default=2)
    parser.add_argument("--no-cache", action="store_true")
    parser.add_argument("--modality", choices=("image", "fused"), default="image")
    parser.add_argument("--fusion", default="gated")
    args = parser.parse_args()

    import torch
    from torch.utils.data import DataLoader

    from petid_sample.identities import make_identity_set
    from training.config import TrainConfig
    from training.data import ImageDataset, ListingDataset, decode_all
    from training.losses import recipe_loss
    from training.model import build_trained_model
    from training.samplers import BalancedIdentitySampler
    from training.transforms import cache_size, data_config, train_transform

    config = TrainConfig.demo(p=args.p, k=args.k, image_size=args.image_size, num_workers=args.workers,
                              cache_images=not args.no_cache, modality=args.modality, fusion=args.fusion)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        frame = make_identity_set(tmp, n_identities=64, photos_per_identity=4, size=320, val_identities=0)
        labels = list(frame.identity_id)
        model = build_trained_model(config)
        dcfg = data_config(model.backbone, config.image_size)
        cache = decode_all(list(frame.path), cache_size(dcfg)) if config.cache_images else None
        if args.modality == "image":
            dataset = ImageDataset(list(frame.path), labels_codes(labels), train_transform(dcfg), cache)
        else:  # a listing-length description per animal (about 40 words), as the sample world writes
            texts = [f"собака; порода: метис {i}; пол: самка. Рыжая собака {i % 7}, белые носочки, ошейник "
                     f"{['синий', 'красный', 'нет'][i % 3]}, " + "глаза карие, хвост крючком, " * 6
                     for i in labels_codes(labels)]
            dataset = ListingDataset(list(frame.path), labels_codes(labels), train_transform(dcfg), texts,
                                     model.tokenizer, cache, text_dropout=config.text_dropout)
        sampler = BalancedIdentitySampler(labels, config.p, config.k, seed=0, small_identities="replace")
        batch_size = config.p * config.k

        data = DataLoader(dataset, batch_sampler=sampler, num_workers=config.num_workers,
                          persistent_workers=config.num_workers > 0,
                          prefetch_factor=4 if config.num_workers else None)

        def loader():
            while True:  # endless: re-epoch the sampler; the persistent workers stay up
                yield from data
                sampler.set_epoch(sampler.epoch + 1)

        def step_fn(channels_last: bool, bf16: bool):
            fmt = torch.channels_last if channels_last else torch.contiguous_format
            net = model.to(memory_format=fmt).train()
            loss_fn = recipe_loss()
            optimizer = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=1e-4)

            def step(images, *rest):
                *text, targets = rest
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    out = net(images.to(memory_format=fmt), *text)
                loss = loss_fn(out.float(), targets)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            return step

        def rate(n_batches: int, seconds: float) -> float:
            return round(n_batches * batch_size / seconds, 2)

        # data loading alone
        it = loader()
        next(it)  # worker start-up excluded
        tick = time.perf_counter()
        batches = [next(it) for _ in range(args.steps)]
        data_rate = rate(args.steps, time.perf_counter() - tick)

        results = {}
        for name, cl, bf16 in (("model_step_contiguous", False, False), ("model_step_channels_last", True, False),
                               ("model_step_bf16", False, True)):
            step = step_fn(cl, bf16)
            for batch in batches[:3]:  # warm-up: oneDNN/autograd settle over the first steps
                step(*batch)
            tick = time.perf_counter()
            for batch in batches:
                step(*batch)
            results[name] = rate(len(batches), time.perf_counter() - tick)

        # the full loop: loader + step with the faster fp32 memory format measured above
        channels_last = results["model_step_channels_last"] > results["model_step_contiguous"]
        results["model_step"] = max(results["model_step_channels_last"], results["model_step_contiguous"])
        step = step_fn(channels_last, False)
        it = loader()
        for _ in range(3):
            step(*next(it))
        tick = time.perf_counter()
        for _ in range(args.steps):
            step(*next(it))
        loop_rate = rate(args.steps, time.perf_counter() - tick)

    report = {
        "modality": config.modality, "fusion": config.fusion if config.modality == "fused" else None,
        "backbone": config.backbone, "image_size": config.image_size, "batch": batch_size,
        "workers": config.num_workers, "cache_images": config.cache_images, "steps": args.steps,
        "torch_threads": torch.get_num_threads(),
        "data_loading_images_per_s": data_rate, "model_step_images_per_s": results["model_step"],
        "model_step_contiguous_images_per_s": results["model_step_contiguous"],
        "model_step_channels_last_images_per_s": results["model_step_channels_last"],
        "model_step_bf16_images_per_s": results["model_step_bf16"], "loop_channels_last": channels_last,
        "full_loop_images_per_s": loop_rate,
        "loop_over_model_step": round(loop_rate / results["model_step"], 3),
    }
    print(json.dumps(report))


def labels_codes(labels: list[str]) -> list[int]:
    codes: dict[str, int] = {}
    return [codes.setdefault(label, len(codes)) for label in labels]


if __name__ == "__main__":
    main()
