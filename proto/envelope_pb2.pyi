from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PayloadFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PAYLOAD_FORMAT_UNSPECIFIED: _ClassVar[PayloadFormat]
    PAYLOAD_FORMAT_AVRO: _ClassVar[PayloadFormat]
    PAYLOAD_FORMAT_PROTOBUF: _ClassVar[PayloadFormat]
    PAYLOAD_FORMAT_JSON: _ClassVar[PayloadFormat]
    PAYLOAD_FORMAT_RAW: _ClassVar[PayloadFormat]
PAYLOAD_FORMAT_UNSPECIFIED: PayloadFormat
PAYLOAD_FORMAT_AVRO: PayloadFormat
PAYLOAD_FORMAT_PROTOBUF: PayloadFormat
PAYLOAD_FORMAT_JSON: PayloadFormat
PAYLOAD_FORMAT_RAW: PayloadFormat

class Metadata(_message.Message):
    __slots__ = ("message_id", "env", "source", "title", "category", "version", "schema_id", "payload_format", "produced_at_ms", "producer", "attributes")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    ENV_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_ID_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FORMAT_FIELD_NUMBER: _ClassVar[int]
    PRODUCED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    PRODUCER_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    env: str
    source: str
    title: str
    category: str
    version: int
    schema_id: int
    payload_format: PayloadFormat
    produced_at_ms: int
    producer: str
    attributes: _containers.ScalarMap[str, str]
    def __init__(self, message_id: _Optional[str] = ..., env: _Optional[str] = ..., source: _Optional[str] = ..., title: _Optional[str] = ..., category: _Optional[str] = ..., version: _Optional[int] = ..., schema_id: _Optional[int] = ..., payload_format: _Optional[_Union[PayloadFormat, str]] = ..., produced_at_ms: _Optional[int] = ..., producer: _Optional[str] = ..., attributes: _Optional[_Mapping[str, str]] = ...) -> None: ...

class Envelope(_message.Message):
    __slots__ = ("metadata", "payload")
    METADATA_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    metadata: Metadata
    payload: bytes
    def __init__(self, metadata: _Optional[_Union[Metadata, _Mapping]] = ..., payload: _Optional[bytes] = ...) -> None: ...
