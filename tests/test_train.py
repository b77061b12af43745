"""End to end: training on the X/O set (cpu and sim), and the `cucnn` command on a tiny generated
IDX data set (train writes every artifact, resume, Ctrl-C, eval, summary)."""
import json

import numpy as np
import pytest

import cucnn
from cucnn import cli, data, models, optim, train

from test_data import _fake_mnist


@pytest.mark.parametrize("device", ["cpu", "sim"])
def test_xo_net_reaches_100_percent_training_accuracy(device):
    if device == "sim" and not cucnn.sim.is_available():
        pytest.skip("cucnn._sim did not build")
    cucnn.manual_seed(0)
    model = models.XONet(device=device)
    opt = optim.Adam(model.parameters(), lr=0.05)
    ds = data.XO(64, seed=0)
    for epoch in range(8):
        rec = train.train_epoch(model, opt, ds, device, 16, seed=epoch, stream=open("/dev/null", "w"))
    loss, acc = train.evaluate(model, ds, device)
    assert acc == 1.0, (loss, acc, rec)


def test_sim_and_cpu_train_to_the_same_weights():
    # The same seed, data and steps on both devices: float32 kernels and BLAS differ only in
    # rounding, so after a few steps the weights still agree closely.
    out = {}
    for device in ("cpu", "sim"):
        cucnn.manual_seed(1)
        model = models.LeNet5(device=device)
        opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        ds = data.ArrayDataset(np.random.default_rng(0).integers(0, 256, (8, 28, 28), np.uint8),
                               np.arange(8) % 10)
        train.train_epoch(model, opt, ds, device, 4, seed=0, stream=open("/dev/null", "w"))
        out[device] = model.state_dict()
    for k in out["cpu"]:
        np.testing.assert_allclose(out["sim"][k], out["cpu"][k], rtol=1e-3, atol=1e-5, err_msg=k)


@pytest.fixture
def tiny_idx(tmp_path):
    root = tmp_path / "idx"
    root.mkdir()
    _fake_mnist(root, n_train=96, n_test=20)
    return root


def _train(tmp_path, tiny_idx, *extra):
    out = tmp_path / "run"
    argv = ["train", "--model", "lenet5", "--dataset", "fashion-mnist", "--data-root",
            str(tiny_idx), "--epochs", "2", "--batch-size", "16", "--val-size", "16",
            "--device", "cpu", "--out", str(out), *extra]
    return cli.main(argv), out


def test_cli_train_writes_every_artifact(tmp_path, tiny_idx, capsys):
    rc, out = _train(tmp_path, tiny_idx)
    assert rc == 0
    err = capsys.readouterr().err
    assert "epoch 2/2 [" in err and "img/s" in err and "validation:" in err and "test:" in err
    metrics = json.loads((out / "metrics.json").read_text())
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2]
    assert metrics["train_size"] == 80 and metrics["val_size"] == 16 and metrics["test_size"] == 20
    for e in metrics["epochs"]:
        assert {"train_loss", "train_acc", "val_loss", "val_acc", "seconds", "images_per_s"} <= set(e)
    assert 0 <= metrics["test_acc"] <= 1 and metrics["parameters"] == 61706
    for name in ("curves.png", "filters.png", "activations.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    ck = cucnn.checkpoint.load(out / "checkpoint.npz")
    assert ck["arch"] == "lenet5" and ck["epoch"] == 2 and ck["optimizer"]["type"] == "Adam"
    assert ck["optimizer"]["state"][0]["step"] == 10  # 5 batches x 2 epochs

    rc = cli.main(["eval", "--checkpoint", str(out / "checkpoint.npz"), "--data-root",
                   str(tiny_idx), "--device", "cpu"])
    assert rc == 0
    result = json.loads(capsys.readouterr().out)
    assert result["test_acc"] == pytest.approx(metrics["test_acc"])  # the same weights


def test_resume_continues_where_the_checkpoint_stopped(tmp_path, tiny_idx, capsys):
    rc, out = _train(tmp_path, tiny_idx, "--no-plots")
    full = json.loads((out / "metrics.json").read_text())
    # Train one epoch, then resume to two: the same numbers as two epochs in one go.
    out2 = tmp_path / "run2"
    assert cli.main(["train", "--data-root", str(tiny_idx), "--epochs", "1", "--batch-size", "16",
                     "--val-size", "16", "--device", "cpu", "--out", str(out2),
                     "--no-plots"]) == 0
    assert cli.main(["train", "--data-root", str(tiny_idx), "--epochs", "2", "--batch-size", "16",
                     "--val-size", "16", "--device", "cpu", "--out", str(out2), "--no-plots",
                     "--resume"]) == 0
    resumed = json.loads((out2 / "metrics.json").read_text())
    assert "resuming lenet5" in capsys.readouterr().err
    assert len(resumed["epochs"]) == 2
    assert resumed["test_acc"] == full["test_acc"]
    assert resumed["epochs"][1]["train_loss"] == pytest.approx(full["epochs"][1]["train_loss"],
                                                               rel=1e-6)


def test_ctrl_c_leaves_a_usable_checkpoint(tmp_path, tiny_idx, monkeypatch, capsys):
    real = train.train_epoch
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(train, "train_epoch", interrupted)
    rc, out = _train(tmp_path, tiny_idx, "--no-plots")
    assert rc == 130
    assert "interrupted during epoch 2" in capsys.readouterr().err
    ck = cucnn.checkpoint.load(out / "checkpoint.npz")
    assert ck["epoch"] == 1 and ck["meta"]["interrupted"]
    monkeypatch.setattr(train, "train_epoch", real)
    rc, _ = _train(tmp_path, tiny_idx, "--no-plots", "--resume")
    assert rc == 0
    assert len(json.loads((out / "metrics.json").read_text())["epochs"]) == 2


def test_cli_summary(capsys):
    assert cli.main(["summary", "--model", "lenet5"]) == 0
    text = capsys.readouterr().out
    assert "Total params: 61,706" in text and "(None, 16, 5, 5)" in text
    assert cli.main(["summary", "--model", "fully_conv", "--input-shape", "1,36,44"]) == 0
    assert "(None, 10, 3, 5)" in capsys.readouterr().out


def test_cli_errors_are_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CUCNN_DATA", str(tmp_path))
    monkeypatch.setattr(data, "SYSTEM_DATA", str(tmp_path / "system"))
    assert cli.main(["train", "--epochs", "1", "--out", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("cucnn train: error: fashion-mnist: cannot find the IDX files")
    assert cli.main(["eval", "--checkpoint", str(tmp_path / "none.npz")]) == 1
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["train", "--model", "nope"])


def test_training_argument_errors(tmp_path, tiny_idx):
    with pytest.raises(ValueError, match="unknown dataset 'cifar'; choose one of"):
        train.load_datasets("cifar")
    with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'; choose adam or sgd"):
        train.make_optimizer("rmsprop", models.XONet().parameters(), 0.1)
    with pytest.raises(ValueError, match="unknown model 'lenet6'"):
        train.run("lenet6", out=tmp_path / "a")
    with pytest.raises(ValueError, match=r"model cifar10 takes inputs of shape \(3, 32, 32\), "
                       r"but fashion-mnist images are \(1, 28, 28\)"):
        train.run("cifar10", data_root=tiny_idx, device="cpu", out=tmp_path / "b")
    with pytest.raises(FileNotFoundError, match="--resume: no checkpoint at"):
        train.run("lenet5", data_root=tiny_idx, device="cpu", out=tmp_path / "c", resume=True)
    rc, out = _train(tmp_path, tiny_idx, "--no-plots", "--epochs", "1")
    assert rc == 0
    with pytest.raises(ValueError, match="holds a 'lenet5' model, not 'mnist_cnn'"):
        train.run("mnist_cnn", data_root=tiny_idx, device="cpu", out=out, resume=True)
