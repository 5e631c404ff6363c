"""The one config system: presets, overrides, type checks and error messages that name the key."""
import pytest

from lwtgpf.config import Config, ConfigError, available_presets, config_from_dict, load_config


def test_defaults_are_the_reference_recipe():
    cfg = load_config()
    assert (cfg.cluster.k1, cfg.cluster.k2, cfg.cluster.eps, cfg.cluster.min_samples) == (20, 6, 0.5, 4)
    assert cfg.loss.temperature == 0.07 and cfg.loss.hard_negatives == 50
    assert cfg.optim.milestones == (20, 40) and cfg.train.epochs == 50
    assert (cfg.data.height, cfg.data.width, cfg.data.batch_size, cfg.data.num_instances) == (384, 128, 32, 4)


@pytest.mark.parametrize("name", ["market1501", "dukemtmc", "occduke", "cuhk03", "msmt17", "synthetic"])
def test_every_preset_loads_and_names_its_dataset(name):
    assert name in available_presets()
    assert load_config(name).data.dataset == name


def test_cli_style_and_mapping_overrides():
    cfg = load_config("synthetic", ["train.epochs=3", "optim.milestones=[1, 2]", "model.flip_test=true"])
    assert cfg.train.epochs == 3 and cfg.optim.milestones == (1, 2) and cfg.model.flip_test is True
    assert load_config(None, ["optim.lr=3e-3"]).optim.lr == 0.003  # YAML reads 3e-3 as a string
    cfg = load_config(None, {"loss": {"temperature": 1}, "data.dataset": "msmt17"})
    assert cfg.loss.temperature == 1.0 and isinstance(cfg.loss.temperature, float)
    assert cfg.data.dataset == "msmt17"


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("train.epoch=3", "train.epoch"),
        ("trian.epochs=3", "trian.epochs"),
        ("train.epochs=three", "train.epochs"),
        ("train.epochs=2.5", "train.epochs"),
        ("model.flip_test=1", "model.flip_test"),
        ("data.mean=[0.5, 0.5]", "data.mean"),
        ("train=3", "train"),
        ("noequals", "noequals"),
    ],
)
def test_bad_overrides_name_the_key(override, fragment):
    with pytest.raises(ConfigError, match=fragment.replace(".", r"\.")):
        load_config("synthetic", [override])


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(ConfigError, match="market1501"):
        load_config("market")


def test_yaml_file_preset_and_round_trip(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("train:\n  epochs: 7\nmethod: o2cap\n")
    cfg = load_config(path)
    assert cfg.train.epochs == 7 and cfg.method == "o2cap"
    cfg.save(tmp_path / "resolved.yaml")
    again = load_config(tmp_path / "resolved.yaml")
    assert again == cfg and config_from_dict(cfg.to_dict()) == cfg
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  backbon: x\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*model\.backbon"):
        load_config(bad)


def test_config_instances_do_not_share_state():
    a, b = Config(), Config()
    a.train.epochs = 1
    assert b.train.epochs == 50
