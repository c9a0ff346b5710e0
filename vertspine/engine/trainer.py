"""The vertspine Trainer: detectron2's DefaultTrainer with the hooks research needs.

What differs from DefaultTrainer, and why:
- DDP without ``device_ids`` for CPU models (gloo runs; see :mod:`vertspine.engine.launch`).
- Checkpoints written atomically and never with NaN or infinite weights
  (:class:`AtomicDetectionCheckpointer`); a divergence names the last good checkpoint.
- On resume: metrics.json loses the lines of the iterations trained again, and the temporary
  files of a save cut by a kill are removed; with ``VERTSPINE.EXACT_RESUME`` the data and the
  random number generators continue where the checkpoint left them (:mod:`.resume`).
- SGD or AdamW, with full-model gradient-norm clipping available (:mod:`.optimizer`).
- The dataset mapper chosen by ``INPUT.DATASET_MAPPER`` (default ``VertspineDatasetMapper``,
  which reads DICOM and 16-bit PNG) and the loaders by ``DATALOADER.BUILDER`` (default
  ``DetectionLoader``, detectron2's; ``PatchLoader`` draws random patches from volumes).
- The evaluator chosen from the dataset's ``evaluator_type`` (:mod:`vertspine.evaluation`);
  results written to ``OUTPUT_DIR/inference/evaluation_results.json``.
- Optional hooks: validation loss (``TEST.VAL_LOSS_PERIOD``), best checkpoint
  (``TEST.BEST_CHECKPOINT_METRIC``), a learning rate stepped on a validation metric
  (``SOLVER.PLATEAU``, :mod:`.plateau`) and an exponential moving average of the weights that
  the evaluations use (``MODEL_EMA``, :mod:`.ema`); the progress line every
  ``VERTSPINE.LOG_PERIOD`` iterations.
- Periodic checkpoints are written after the evaluation of the same iteration, so that they
  hold what that evaluation changed (the plateau schedule's state).
"""
import json
import logging
import os
import weakref

from detectron2.engine import AMPTrainer, DefaultTrainer, SimpleTrainer, TrainerBase, hooks
from detectron2.utils import comm
from detectron2.utils.events import CommonMetricPrinter, TensorboardXWriter
from detectron2.utils.logger import setup_logger

from vertspine.data import (
    build_dataset_mapper,
    build_test_loader,
    build_train_loader,
    check_num_classes,
)
from vertspine.evaluation import build_evaluator
from vertspine.utils.file_io import atomic_write

from .checkpoint import AtomicDetectionCheckpointer, NonFiniteWeightsError
from .ema import EMA_CHECKPOINT_KEY, EMAUpdate, build_model_ema
from .hooks import ValidationLoss
from .launch import create_ddp_model
from .optimizer import build_optimizer
from .plateau import PlateauScaledSchedule, ValidationPlateau, check_plateau_settings
from .resume import ReplayableLoader, RNGStates, preserved_rng_states
from .writers import MetricsJSONWriter

__all__ = ["Trainer"]

logger = logging.getLogger(__name__)
RNG_CHECKPOINT_KEY = "rng_states"


class Trainer(DefaultTrainer):
    """DefaultTrainer with vertspine's launch, checkpointing, optimizer, data and hooks."""

    def __init__(self, cfg):
        TrainerBase.__init__(self)
        if not logging.getLogger("detectron2").isEnabledFor(logging.INFO):
            setup_logger()
        cfg = DefaultTrainer.auto_scale_workers(cfg, comm.get_world_size())
        model = self.build_model(cfg)
        optimizer = self.build_optimizer(cfg, model)
        data_loader = ReplayableLoader(self.build_train_loader(cfg))
        self.model_ema = build_model_ema(cfg, model)
        model = create_ddp_model(model, broadcast_buffers=False)
        trainer_class = AMPTrainer if cfg.SOLVER.AMP.ENABLED else SimpleTrainer
        self._trainer = trainer_class(model, data_loader, optimizer)
        self.scheduler = self.build_lr_scheduler(cfg, optimizer)
        self.checkpointer = AtomicDetectionCheckpointer(
            model, cfg.OUTPUT_DIR, trainer=weakref.proxy(self)
        )
        if self.model_ema is not None:
            self.checkpointer.add_checkpointable(EMA_CHECKPOINT_KEY, self.model_ema)
        self.rng_states = RNGStates()
        self.checkpointer.add_checkpointable(RNG_CHECKPOINT_KEY, self.rng_states)
        self.start_iter = 0
        self.max_iter = cfg.SOLVER.MAX_ITER
        self.cfg = cfg
        self.metrics_writer = None  # the main process's, set by build_writers
        self.register_hooks(self.build_hooks())

    def state_dict(self):
        """TrainerBase's (iteration, hook states) plus the optimizer's state (and AMP's grad
        scaler), which detectron2 0.6's DefaultTrainer leaves out of its checkpoints: without
        it a resumed run restarts SGD momentum / Adam moments from zero."""
        ret = super().state_dict()
        ret["_trainer"] = self._trainer.state_dict()
        return ret

    def load_state_dict(self, state_dict):
        """Iteration, hook states and, from checkpoints that hold it, the optimizer's state."""
        super().load_state_dict(state_dict)
        if "_trainer" in state_dict:
            self._trainer.load_state_dict(state_dict["_trainer"])
        else:
            logger.warning("The checkpoint holds no optimizer state (written before vertspine "
                           "saved it): the optimizer's momentum restarts from zero.")

    def resume_or_load(self, resume: bool = True):
        """DefaultTrainer's; on resume the main process also removes the temporary files of an
        interrupted save and the metrics.json lines of the iterations it will train again."""
        super().resume_or_load(resume=resume)
        if resume and comm.is_main_process():
            self.checkpointer.remove_stale_temporary_files()
            if self.metrics_writer is not None:
                self.metrics_writer.drop_from(self.start_iter)
        if resume and self.start_iter > 0 and self.cfg.VERTSPINE.EXACT_RESUME:
            self._continue_data_and_random_numbers()

    def _continue_data_and_random_numbers(self) -> None:
        """Replay the loader's batches of the iterations already trained, then set the random
        number generators to the checkpoint's (one process), as :mod:`.resume` describes."""
        if self.cfg.SEED < 0:
            logger.warning("SEED is %d: this run's data order was drawn at random and cannot be "
                           "continued exactly; set SEED to a fixed value for exact resumes.",
                           self.cfg.SEED)
            return
        logger.info("Exact resume: drawing again the %d batches already trained "
                    "(VERTSPINE.EXACT_RESUME False skips this)", self.start_iter)
        self.data_loader.skip(self.start_iter)
        if comm.get_world_size() > 1:
            logger.warning("Exact resume in %d processes: the data order continues, the random "
                           "numbers do not (the checkpoint holds the main process's).",
                           comm.get_world_size())
        elif not self.rng_states.restore_loaded():
            logger.warning("The checkpoint holds no random number generator states (written "
                           "before they were saved): the resumed run's random draws differ.")

    def train(self):
        """DefaultTrainer's; a divergence (NaN or infinite loss) names the last checkpoint,
        whose weights are finite, and how to go on."""
        try:
            return super().train()
        except NonFiniteWeightsError:
            raise
        except FloatingPointError as e:
            raise FloatingPointError(f"{e}\n{self.checkpointer.divergence_advice()}") from e

    def build_writers(self):
        """detectron2's default writers, with a metrics.json writer that resume can trim."""
        os.makedirs(self.cfg.OUTPUT_DIR, exist_ok=True)
        self.metrics_writer = MetricsJSONWriter(os.path.join(self.cfg.OUTPUT_DIR, "metrics.json"))
        return [CommonMetricPrinter(self.max_iter), self.metrics_writer,
                TensorboardXWriter(self.cfg.OUTPUT_DIR)]

    @classmethod
    def build_optimizer(cls, cfg, model):
        return build_optimizer(cfg, model)

    @classmethod
    def build_lr_scheduler(cls, cfg, optimizer):
        """detectron2's schedule; with SOLVER.PLATEAU.METRIC its multiplier is wrapped in a
        :class:`PlateauScaledSchedule` that the :class:`ValidationPlateau` hook lowers."""
        scheduler = super().build_lr_scheduler(cfg, optimizer)
        check_plateau_settings(cfg)
        if cfg.SOLVER.PLATEAU.METRIC:
            # LRMultiplier reads its fvcore schedule from _multiplier at every step (and does
            # not save it: the plateau state is the hook's)
            scheduler._multiplier = PlateauScaledSchedule(scheduler._multiplier)
        return scheduler

    @classmethod
    def build_train_loader(cls, cfg):
        loader = build_train_loader(cfg, build_dataset_mapper(cfg, is_train=True))
        check_num_classes(cfg, cfg.DATASETS.TRAIN)
        return loader

    @classmethod
    def build_test_loader(cls, cfg, dataset_name):
        loader = build_test_loader(cfg, dataset_name, build_dataset_mapper(cfg, is_train=False))
        check_num_classes(cfg, [dataset_name])
        return loader

    @classmethod
    def build_validation_loss_loader(cls, cfg, dataset_name):
        """The mapper's own test-time transform with the ground truth kept: the same batches at
        every measurement."""
        mapper = build_dataset_mapper(cfg, is_train=False, with_ground_truth=True)
        return build_test_loader(cfg, dataset_name, mapper)

    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_folder=None):
        if output_folder is None:
            output_folder = os.path.join(cfg.OUTPUT_DIR, "inference", dataset_name)
        return build_evaluator(cfg, dataset_name, output_folder)

    @classmethod
    def test(cls, cfg, model, evaluators=None):
        """Evaluate on every DATASETS.TEST and write the results as JSON (main process)."""
        results = super().test(cfg, model, evaluators)
        if comm.is_main_process():
            path = os.path.join(cfg.OUTPUT_DIR, "inference", "evaluation_results.json")
            with atomic_write(path, "w") as f:
                json.dump({"datasets": list(cfg.DATASETS.TEST), "results": results}, f, indent=2)
        return results

    @property
    def evaluation_model(self):
        """The model the evaluations run: the weight average with MODEL_EMA, else the model."""
        return self.model if self.model_ema is None else self.model_ema.module

    def build_hooks(self):
        """DefaultTrainer's hooks, plus validation loss, best checkpoint, plateau schedule and
        weight EMA when configured.

        The EMA update runs right after the learning-rate step, before the checkpointer and the
        evaluation, which evaluates :attr:`evaluation_model`. DefaultTrainer's own
        PeriodicWriter (period 20, fixed in its code) is reused with the period
        VERTSPINE.LOG_PERIOD and kept last, so that it writes what the added hooks stored;
        building a second one would open a second, empty TensorBoard file. The plateau hook
        follows the evaluation; the periodic checkpointer follows both.
        """
        cfg = self.cfg
        ret = [self._evaluation_hook() if isinstance(h, hooks.EvalHook) else h
               for h in super().build_hooks()]
        if self.model_ema is not None:
            after_lr = 1 + next(i for i, h in enumerate(ret) if isinstance(h, hooks.LRScheduler))
            model = getattr(self.model, "module", self.model)  # DDP-unwrapped
            ret.insert(after_lr, EMAUpdate(self.model_ema, model))
        if cfg.SOLVER.PLATEAU.METRIC:
            plateau = cfg.SOLVER.PLATEAU
            after_eval = 1 + next(i for i, h in enumerate(ret) if isinstance(h, hooks.EvalHook))
            ret.insert(after_eval, ValidationPlateau(
                self.scheduler._multiplier, cfg.TEST.EVAL_PERIOD, plateau.METRIC, plateau.MODE,
                plateau.FACTOR, plateau.PATIENCE, plateau.THRESHOLD, plateau.MIN_SCALE))
        checkpointers = [h for h in ret if isinstance(h, hooks.PeriodicCheckpointer)]
        writers = [h for h in ret if isinstance(h, hooks.PeriodicWriter)]  # main process only
        ret = [h for h in ret if not isinstance(h, (hooks.PeriodicCheckpointer,
                                                    hooks.PeriodicWriter))] + checkpointers
        if cfg.TEST.VAL_LOSS_PERIOD > 0 and cfg.DATASETS.TEST:
            loader = self.build_validation_loss_loader(cfg, cfg.DATASETS.TEST[0])
            ret.append(ValidationLoss(cfg.TEST.VAL_LOSS_PERIOD, loader, cfg.TEST.VAL_LOSS_NUM_BATCHES))
        if cfg.TEST.BEST_CHECKPOINT_METRIC and comm.is_main_process():
            ret.append(hooks.BestCheckpointer(
                cfg.TEST.EVAL_PERIOD, self.checkpointer, cfg.TEST.BEST_CHECKPOINT_METRIC,
                mode=cfg.TEST.BEST_CHECKPOINT_MODE,
            ))
        for writer in writers:
            writer._period = cfg.VERTSPINE.LOG_PERIOD
        return ret + writers

    def _evaluation_hook(self) -> hooks.EvalHook:
        """DefaultTrainer's EvalHook, evaluating :attr:`evaluation_model` without changing the
        training's random number generators."""

        def test_and_save_results():
            with preserved_rng_states():  # the evaluation draws no training random numbers
                self._last_eval_results = self.test(self.cfg, self.evaluation_model)
            return self._last_eval_results

        return hooks.EvalHook(self.cfg.TEST.EVAL_PERIOD, test_and_save_results)
