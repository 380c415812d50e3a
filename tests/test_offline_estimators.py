"""The 2019 article's estimator cells, offline: Chainer(...) submitted with experiment.submit, and
HyperDriveConfig(estimator=...) as the older Azure Chainer notebook wrote it."""

import shutil

import pytest
from azureml.core.compute import AmlCompute
from azureml.exceptions import TrainingException
from azureml.train.hyperdrive import GridParameterSampling, HyperDriveConfig, PrimaryMetricGoal, choice
from helpers import REPO, STAND_IN

from azureml_offline.compute import ComputeTarget
from azureml_offline.experiment import Experiment


def chainer_estimator(**arguments):
    """azureml.train.dnn.Chainer(**arguments). Importing azureml.train.dnn takes seconds (it loads the SDK's
    package metadata): imported here, only the tests that use it pay, not every process that collects the suite."""
    from azureml.train.dnn import Chainer

    return Chainer(**arguments)


@pytest.fixture
def article(fresh_workspace, tmp_path):
    """The article's set-up: a project folder with the script, an experiment and a GPU cluster."""
    project_folder = tmp_path / "chainer-mnist"
    project_folder.mkdir()
    shutil.copy(REPO / "chainer_mnist.py", project_folder)
    (project_folder / "train.py").write_text(STAND_IN)
    compute_target = ComputeTarget.create(
        fresh_workspace,
        "gpu-cluster",
        AmlCompute.provisioning_configuration(vm_size="STANDARD_NC4AS_T4_V3", max_nodes=4),
    )
    return str(project_folder), Experiment(fresh_workspace, "chainer-mnist"), compute_target


def test_the_articles_chainer_estimator_trains_offline(article, mnist_dir, monkeypatch, capsys):
    project_folder, exp, compute_target = article
    monkeypatch.setenv("MNIST_DIR", str(mnist_dir))
    # The article's cell (one epoch instead of ten, to be quick), submitted as it meant to: exp.submit(estimator).
    script_params = {"--epochs": 1, "--batchsize": 128, "--output_dir": "./outputs"}
    estimator = chainer_estimator(
        source_directory=project_folder,
        script_params=script_params,
        compute_target=compute_target,
        entry_script="chainer_mnist.py",
        use_gpu=True,
    )
    run = exp.submit(estimator)
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 1 and printed[0].startswith(f"Offline run {run.id}: this Python runs chainer_mnist.py")
    assert printed[0].endswith(
        "the image it names (Chainer 5.1.0, mcr.microsoft.com/azureml/base-gpu:"
        "intelmpi2018.3-cuda9.0-cudnn7-ubuntu16.04) is not built."
    )
    details = run.wait_for_completion(show_output=True)
    assert details["status"] == "Completed" and details["target"] == "gpu-cluster"
    assert details["runDefinition"]["arguments"] == ["--epochs", "1", "--batchsize", "128", "--output_dir", "./outputs"]
    assert "outputs/model.npz" in run.get_file_names()
    assert isinstance(run.get_metrics()["Accuracy"], float)  # one epoch: logged once


def test_submit_overrides_script_params_for_one_run_only_as_the_sdk_does(article):
    project_folder, exp, compute_target = article
    estimator = chainer_estimator(
        source_directory=project_folder,
        script_params={"--values": "0.5"},
        compute_target=compute_target,
        entry_script="train.py",
        framework_version="7.0.0",
    )
    run = exp.submit(estimator, script_params={"--values": "0.7"})
    assert run.get_details()["runDefinition"]["arguments"] == ["--values", "0.7"]
    assert estimator.run_config.arguments == ["--values", "0.5"]
    with pytest.raises(TrainingException, match=r"\['node_count'\] parameters cannot be overridden"):
        exp.submit(estimator, node_count=2)
    assert run.wait_for_completion()["status"] == "Completed"


def test_hyperdrive_config_with_an_estimator_sweeps_its_entry_script(article):
    project_folder, exp, compute_target = article
    estimator = chainer_estimator(
        source_directory=project_folder,
        script_params={"--values": "0.1", "--seconds": 0},
        compute_target=compute_target,
        entry_script="train.py",
        use_gpu=True,
    )
    with pytest.warns(UserWarning, match=r"HyperDrive parameter space definition will override.*'--values'"):
        run = exp.submit(
            HyperDriveConfig(
                estimator=estimator,
                hyperparameter_sampling=GridParameterSampling({"values": choice("0.5", "0.7")}),
                primary_metric_name="Accuracy",
                primary_metric_goal=PrimaryMetricGoal.MAXIMIZE,
                max_total_runs=2,
            )
        )
    run.wait_for_completion()
    first, second = run.get_children()
    # The sweep's "values" replaces the estimator's --values; a key without dashes is passed as --values.
    assert first.get_details()["runDefinition"]["arguments"] == ["--seconds", "0", "--values", "0.5"]
    assert run.get_best_run_by_primary_metric().id == second.id
