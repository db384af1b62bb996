package internal
import (
_ "github.com/labstack/echo/v4"
_ "github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
_ "github.com/aws/aws-sdk-go-v2/config"
_ "github.com/aws/aws-sdk-go-v2/credentials"
_ "github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
_ "github.com/sony/gobreaker/v2"
_ "github.com/spf13/viper"
_ "github.com/prometheus/client_golang/prometheus"
_ "github.com/redis/go-redis/v9"
_ "go.uber.org/goleak"
_ "golang.org/x/sync/errgroup"
)

