"""Text classification RPCs of FeedbackService: proto -> arguments, one unit of work and one
service call in it, result -> proto. TrainTextClassifier launches its run once its unit of work
has committed (`crmkit.operations.Started`). The text to classify is never logged."""

from __future__ import annotations

import grpc

from crm.feedback.v1 import feedback_service_pb2 as pb
from crm_feedback.api import classification_messages as messages
from crm_feedback.classification.service import TextClassifiers
from crmkit.auth import current_principal
from crmkit.db import Database
from crmkit.idempotency import parse_request_id


class ClassificationRpcs:
    """Classify text; train, read and list text classifiers."""

    _db: Database
    _classifiers: TextClassifiers

    async def ClassifyText(self, request: pb.ClassifyTextRequest, context: grpc.aio.ServicerContext
                           ) -> pb.ClassifyTextResponse:
        async with self._db.unit_of_work(read_only=True) as uow:
            result = await self._classifiers.classify(uow=uow, text=request.text,
                                                      language_code=request.language_code)
        return pb.ClassifyTextResponse(classification=messages.classification_to_proto(result))

    async def TrainTextClassifier(self, request: pb.TrainTextClassifierRequest, context: grpc.aio.ServicerContext
                                  ) -> pb.TrainTextClassifierResponse:
        request_id = parse_request_id(request.request_id)
        async with self._db.unit_of_work() as uow:
            started = await self._classifiers.start_training(
                uow=uow, request=messages.to_request(request.spec), request_id=request_id, message=request,
                actor=current_principal())
        started.launch()
        return pb.TrainTextClassifierResponse(operation=started.operation)

    async def GetTextClassifier(self, request: pb.GetTextClassifierRequest, context: grpc.aio.ServicerContext
                                ) -> pb.GetTextClassifierResponse:
        text_classifier_id = messages.TEXT_CLASSIFIER_NAME.parse_one(request.name, required=True)
        async with self._db.unit_of_work(read_only=True) as uow:
            model = await self._classifiers.get(uow=uow, text_classifier_id=text_classifier_id)
        return pb.GetTextClassifierResponse(text_classifier=messages.to_proto(model))

    async def ListTextClassifiers(self, request: pb.ListTextClassifiersRequest, context: grpc.aio.ServicerContext
                                  ) -> pb.ListTextClassifiersResponse:
        async with self._db.unit_of_work(read_only=True) as uow:
            page = await self._classifiers.list(uow=uow, page_size=request.page_size, page_token=request.page_token,
                                                target=request.target)
        return pb.ListTextClassifiersResponse(text_classifiers=[messages.to_proto(m) for m in page.items],
                                              next_page_token=page.next_page_token)
